"""Renders a Kustomize directory without kubectl: `.venv/bin/python deploy/kubernetes/render.py DIR > out.yaml`.

Only the part of Kustomize these manifests use, with Kustomize's meaning: `resources` (files, or
directories holding a kustomization.yaml, rendered first), `namespace`, `images` (newName / newTag /
digest) and `patches` that are JSON 6902 operations on a target named by kind and name. Anything else
in a kustomization.yaml is refused by name rather than ignored, so this renders exactly what
`kubectl kustomize DIR` does or fails. Used by tests/deploy/test_kubernetes.py; an operator with kubectl
uses `kubectl apply -k DIR` instead.
"""

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
# Kinds that are not namespaced (Kustomize leaves them without a namespace).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class RenderError(Exception):
    pass


def render(directory: Path) -> list[Doc]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise RenderError(f"{path}: not supported by this renderer: {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            docs.extend(render(target))
        elif target.is_file():
            docs.extend(d for d in yaml.safe_load_all(target.read_text()) if d)
        else:
            raise RenderError(f"{path}: resource {entry} does not exist")
    _refuse_duplicates(docs, path)
    for patch in spec.get("patches", []):
        _patch(docs, patch, directory, path)
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for container in _containers(docs):
            _set_image(container, image)
    return docs


def _refuse_duplicates(docs: list[Doc], path: Path) -> None:
    seen: set[tuple[str, str]] = set()
    for doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        if key in seen:
            raise RenderError(f"{path}: {key[0]} {key[1]} defined twice")
        seen.add(key)


def _patch(docs: list[Doc], patch: Doc, directory: Path, path: Path) -> None:
    unknown = set(patch) - {"target", "patch", "path"}
    if unknown or "target" not in patch:
        raise RenderError(f"{path}: only JSON 6902 patches with a target are supported")
    target = patch["target"]
    if set(target) - {"kind", "name", "group", "version"}:
        raise RenderError(f"{path}: patch targets are chosen by kind and name only")
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    operations = yaml.safe_load(text)
    if not isinstance(operations, list):
        raise RenderError(f"{path}: a patch must be a list of JSON 6902 operations")
    matched = [d for d in docs if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]]
    if not matched:
        raise RenderError(f"{path}: patch target {target['kind']} {target['name']} not found")
    for doc in matched:
        for operation in operations:
            apply_operation(doc, operation)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise RenderError(f"not a JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def apply_operation(doc: Doc, operation: Doc) -> None:
    """One RFC 6902 operation (add, replace, remove, test) on `doc`, in place."""
    op, parts = operation["op"], _pointer(operation["path"])
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if op == "test":
        current = parent[int(last)] if isinstance(parent, list) else parent[last]
        if current != operation["value"]:
            raise RenderError(f"test failed at {operation['path']}")
    elif op in ("add", "replace"):
        value = copy.deepcopy(operation["value"])
        if isinstance(parent, list):
            if op == "add":
                parent.insert(len(parent) if last == "-" else int(last), value)
            else:
                parent[int(last)] = value
        else:
            if op == "replace" and last not in parent:
                raise RenderError(f"replace of a missing path {operation['path']}")
            parent[last] = value
    elif op == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    else:
        raise RenderError(f"unsupported patch operation {op!r}")


def _containers(docs: list[Doc]) -> list[Doc]:
    found = []
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template", {}
        ).get("spec")
        if pod:
            found.extend(pod.get("initContainers", []) + pod.get("containers", []))
    return found


def _set_image(container: Doc, image: Doc) -> None:
    name, _, _ = container["image"].partition("@")
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    if name != image["name"]:
        return
    new = image.get("newName", name)
    if "digest" in image:
        container["image"] = f"{new}@{image['digest']}"
    elif "newTag" in image:
        container["image"] = f"{new}:{image['newTag']}"
    else:
        container["image"] = new


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python deploy/kubernetes/render.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("directory", metavar="DIR", help="a directory holding a kustomization.yaml")
    args = parser.parse_args(argv)
    try:
        docs = render(Path(args.directory))
    except RenderError as error:
        print(f"render: {error}", file=sys.stderr)
        return 1
    print(yaml.safe_dump_all(docs, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
