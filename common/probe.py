"""`python -m common.probe [healthz|readyz]`: a container's health check. Asks this process's own
health listener (RESULTBUS_METRICS_PORT; common/service.py) and exits 0 on 200, 1 otherwise, with
one line saying why: what an orchestrator runs, without curl in the image."""

import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

from common.env import process_env


def probe(env: Mapping[str, str], path: str = "healthz", timeout: float = 2.0) -> str | None:
    """None when healthy, else why not."""
    port = env.get("RESULTBUS_METRICS_PORT")
    if not port:
        return "RESULTBUS_METRICS_PORT is not set: this process serves no health endpoint"
    host = env.get("RESULTBUS_METRICS_HOST", "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening everywhere: ask on loopback
    url = f"http://{host}:{port}/{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"{url}: {response.status}"
    except urllib.error.HTTPError as error:
        return f"{url}: {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: {getattr(error, 'reason', error)}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else "healthz"
    if path not in ("healthz", "readyz"):
        print("usage: python -m common.probe [healthz|readyz]", file=sys.stderr)
        return 2
    why = probe(process_env(), path)
    if why is not None:
        print(f"unhealthy: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
