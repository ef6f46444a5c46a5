"""The crosswalk through the admin API on a real listener and the real database: one mapping at a
time, the CSV import (all or nothing, every bad line reported), the held results a mapping releases,
and the look-up the delivery worker makes (the iTEP order's registration, the table)."""

import uuid
from typing import Any

import msgspec

from gradebook import crosswalk_db
from gradebook.config import CrosswalkConfig
from gradebook.crosswalk import Mapped, Row, Source, Unmapped, resolve
from schemas.event import OrderRef
from tests.support.admin import AUTH, Admin
from tests.support.gradebook_world import sample_itep, sample_synap
from tests.support.itep import an_order

BY = "registrar@example.edu"


async def csv(
    admin: Admin, text: str | bytes, content_type: str = "text/csv", **params: str
) -> tuple[int, Any]:
    async with admin.http.post(
        admin.base + "/v1/crosswalk/import",
        data=text.encode() if isinstance(text, str) else text,
        params={"by": BY, **params},
        headers={**AUTH, "Content-Type": content_type},
    ) as response:
        return response.status, await response.json()


async def test_one_mapping_is_set_changed_read_listed_and_deleted(admin: Admin) -> None:
    path = "/v1/crosswalk/synap/user-77"
    status, created = await admin.call("PUT", path, {"student": "S-1001", "by": BY, "note": "from the CRM"})
    assert status == 200, created
    assert (created["change"], created["previous_student"], created["released"]) == ("created", None, 0)
    assert created["mapping"]["student"] == "S-1001" and created["mapping"]["source"] == "api"
    status, same = await admin.call("PUT", path, {"student": "S-1001", "by": BY, "note": "from the CRM"})
    assert (status, same["change"]) == (200, "unchanged")
    status, moved = await admin.call("PUT", path, {"student": "S-2002", "override": True, "by": "ticket-42"})
    assert (moved["change"], moved["previous_student"]) == ("updated", "S-1001")
    status, found = await admin.call("GET", path)
    assert status == 200
    assert (found["student"], found["override"], found["created_by"], found["updated_by"]) == (
        "S-2002",
        True,
        BY,
        "ticket-42",
    )
    assert [(h["before"], h["after"], h["changed_by"]) for h in found["history"]] == [
        (None, "S-1001", BY),
        ("S-1001", "S-2002", "ticket-42"),
    ]
    for n in range(3):
        await admin.call("PUT", f"/v1/crosswalk/testpress/{900 + n}", {"student": f"T-{n}", "by": BY})
    status, page = await admin.call("GET", "/v1/crosswalk", vendor="testpress", limit="2")
    assert [m["candidate"] for m in page["mappings"]] == ["900", "901"] and page["next"]
    status, rest = await admin.call(
        "GET", "/v1/crosswalk", vendor="testpress", limit="2", cursor=page["next"]
    )
    assert [m["candidate"] for m in rest["mappings"]] == ["902"] and rest["next"] is None
    status, by_student = await admin.call("GET", "/v1/crosswalk", student="S-2002")
    assert [m["candidate"] for m in by_student["mappings"]] == ["user-77"]
    assert (await admin.call("DELETE", path))[0] == 422  # who deletes it must be said
    assert (await admin.call("DELETE", path, by=BY))[0] == 204
    assert (await admin.call("GET", path))[0] == 404
    assert (await admin.call("DELETE", path, by=BY))[0] == 404


async def test_bad_mappings_get_precise_answers(admin: Admin) -> None:
    status, body = await admin.call("PUT", "/v1/crosswalk/moodle/x", {"student": "S-1", "by": BY})
    assert (status, body["error"]) == (404, "no such vendor: one of itep, inspera, synap, testpress")
    status, body = await admin.call("PUT", "/v1/crosswalk/itep/T1", {"student": "S-1"})
    assert status == 422 and "by" in body["error"]
    status, body = await admin.call("PUT", "/v1/crosswalk/itep/T1", {"student": "  ", "by": BY})
    assert status == 422
    status, body = await admin.call("PUT", "/v1/crosswalk/itep/T1", {"student": "S-1\u0007", "by": BY})
    assert (status, body["error"]) == (422, "student: control and format characters are not allowed")
    status, body = await admin.call("PUT", "/v1/crosswalk/itep/T1", {"student": "S-1", "by": BY, "sis": 1})
    assert status == 422 and "sis" in body["error"]
    async with admin.http.put(admin.base + "/v1/crosswalk/itep/T1", data=b"{", headers=AUTH) as response:
        assert response.status == 400
    status, body = await admin.call("GET", "/v1/crosswalk", cursor="nope")
    assert (status, body["error"]) == (422, "cursor: not a cursor this API gave")


async def test_a_csv_file_is_imported_whole(admin: Admin) -> None:
    text = (
        "\ufeffVendor,Candidate,Student,Override,Note\r\n"
        "itep,3279B035APR,S-1001,,June sitting\r\n"
        "synap,user-77,S-1002,yes,\r\n"
        "\r\n"
        "testpress,918,S-1003,false,\r\n"
        "testpress,918,S-1003,false,\r\n"  # the same line twice is one mapping
    )
    status, body = await csv(admin, text)
    assert status == 200, body
    assert (body["lines"], body["created"], body["updated"], body["unchanged"]) == (3, 3, 0, 0)
    status, again = await csv(admin, text)
    assert (again["created"], again["unchanged"]) == (0, 3)
    status, moved = await csv(admin, "vendor,candidate,student\nitep,3279B035APR,S-9999\n")
    assert moved["reassigned"] == [
        {"line": 2, "vendor": "itep", "candidate": "3279B035APR", "before": "S-1001", "after": "S-9999"}
    ]
    status, found = await admin.call("GET", "/v1/crosswalk/synap/user-77")
    assert (found["student"], found["override"], found["source"]) == ("S-1002", True, "csv")


async def test_a_csv_file_with_any_bad_line_changes_nothing(admin: Admin) -> None:
    text = (
        "vendor,candidate,student\n"
        "itep,T-1,S-1\n"
        "moodle,T-2,S-2\n"
        "itep,,S-3\n"
        "itep,T-4\n"
        "itep,T-1,S-5\n"
        'synap,"u,1",S-6\n'
    )
    status, body = await csv(admin, text)
    assert status == 422
    assert body["error"] == "4 lines refused; nothing was imported"
    assert body["lines"] == [
        {"line": 3, "error": "vendor 'moodle' is not one of itep, inspera, synap, testpress"},
        {"line": 4, "error": "candidate is empty, longer than 200 characters, or holds control characters"},
        {"line": 5, "error": "2 fields, the header has 3"},
        {"line": 6, "error": "itep 'T-1' is mapped to 'S-1' on line 2 already"},
    ]
    status, listed = await admin.call("GET", "/v1/crosswalk")
    assert listed["mappings"] == []


async def test_csv_header_encoding_size_and_dry_run(admin: Admin) -> None:
    status, body = await csv(admin, "vendor,candiate,student\nitep,T-1,S-1\n")
    assert status == 422
    assert body["lines"] == [
        {
            "line": 1,
            "error": "unknown column 'candiate'; missing column 'candidate'"
            " (columns: vendor, candidate, student, override, note)",
        }
    ]
    assert (await csv(admin, "vendor,candidate,student\n"))[1]["lines"][0][
        "error"
    ] == "the file holds no mapping"
    status, body = await csv(
        admin, "vendor,candidate,student\nitep,T-1,S-1\n", content_type="application/json"
    )
    assert status == 415
    status, body = await csv(admin, "vendor,candidate,student\nitep,T-1,S-\xe9\n".encode("latin-1"))
    assert status == 400 and body["error"].startswith("the file is not UTF-8")
    big = "vendor,candidate,student\n" + "".join(
        f"itep,T-{n:07d},S-{n:07d}-{'x' * 60}\n" for n in range(60_000)
    )
    status, body = await csv(admin, big)
    assert status == 413, body
    status, dry = await csv(admin, "vendor,candidate,student\nitep,T-1,S-1\n", dry_run="true")
    assert (status, dry["dry_run"], dry["created"]) == (200, True, 1)
    assert (await admin.call("GET", "/v1/crosswalk/itep/T-1"))[0] == 404  # nothing stored


async def test_a_mapping_releases_the_results_held_for_its_candidate(admin: Admin) -> None:
    status, created = await admin.call("POST", "/v1/subscriptions", {"url": "https://example.com/hook"})
    subscription = created["subscription"]["id"]
    event = sample_synap()
    async with admin.pool.acquire() as conn:
        found = await crosswalk_db.lookup(conn, event)
        held = resolve(event, CrosswalkConfig(), found)
        assert isinstance(held, Unmapped)
        delivery_id = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO deliveries (id, subscription_id, event_id, event_type, status) VALUES ($1, $2, $3, $4, 'held')",
            delivery_id,
            subscription,
            event.id,
            event.type,
        )
        async with conn.transaction():
            await crosswalk_db.hold(
                conn, subscription_id=subscription, event=event, reason=held.reason, delivery_id=delivery_id
            )
    status, listed = await admin.call(
        "GET", "/v1/crosswalk/held", vendor="synap", subscription_id=subscription
    )
    assert status == 200
    other = str(uuid.uuid4())
    assert (await admin.call("GET", "/v1/crosswalk/held", subscription_id=other))[1]["held"] == []
    (shown,) = listed["held"]
    assert (shown["candidate"], shown["event_id"], shown["exam_key"]) == (
        "user-77",
        event.id,
        "attempt:att-9001",
    )
    assert shown["reason"].startswith("no student for synap candidate 'user-77'")
    status, stored = await admin.call("PUT", "/v1/crosswalk/synap/user-77", {"student": "S-1002", "by": BY})
    assert stored["released"] == 1
    assert (await admin.call("GET", "/v1/crosswalk/held"))[1]["held"] == []
    released = (await admin.call("GET", "/v1/crosswalk/held", released="true"))[1]["held"]
    assert released[0]["released_by"] == "crosswalk:synap/user-77"
    async with admin.pool.acquire() as conn:
        # Its delivery is still held: the delivery workers publish its task, then mark it resumed.
        (resumable,) = await crosswalk_db.resumable(conn)
        assert (resumable.delivery_id, resumable.event_id) == (delivery_id, event.id)
        await crosswalk_db.mark_resumed(conn, [resumable.delivery_id])
        assert await crosswalk_db.resumable(conn) == []
        # The delivery worker's look-up now maps the candidate.
        assert resolve(event, CrosswalkConfig(), await crosswalk_db.lookup(conn, event)) == Mapped(
            "S-1002", Source.TABLE
        )
        # Held again (a later event of the exam, say): waiting once more, resumable once more.
        # (The look-up found the mapping: a hold that saw it is not released by it.)
        async with conn.transaction():
            await crosswalk_db.hold(
                conn, subscription_id=subscription, event=event, reason="again", seen=Row(student="S-1002")
            )
        assert [h.reason for h in await crosswalk_db.held(conn, candidate="user-77")] == ["again"]


async def test_the_lookup_reads_the_itep_orders_registration(admin: Admin) -> None:
    status, order = await admin.call(
        "POST",
        "/v1/itep/orders",
        an_order(registration={"Last_Name": "Example", "trStudent_Number": "2024-0042"}),
    )
    assert status == 202, order
    event = msgspec.structs.replace(
        sample_itep(OID=order["id"]), order=OrderRef(id=order["id"], reference=order["reference"])
    )
    async with admin.pool.acquire() as conn:
        found = await crosswalk_db.lookup(conn, event)
        assert (found.order_student_number, found.order_product, found.row) == (
            "2024-0042",
            "STX-Academic-Plus",
            None,
        )
        assert resolve(event, CrosswalkConfig(), found) == Mapped("2024-0042", Source.ORDER_REGISTRATION)
        # An event of an order no one knows: nothing read, nothing taken for granted.
        stranger = msgspec.structs.replace(event, order=OrderRef(id=str(uuid.uuid4()), reference="x"))
        assert (await crosswalk_db.lookup(conn, stranger)).order_student_number is None


async def test_hostile_files_get_a_4xx_and_change_nothing(admin: Admin) -> None:
    hostile: list[bytes] = [
        bytes(range(256)),
        b'vendor,candidate,student\n"itep,T-1,S-1\n',  # a quote never closed
        b"vendor,candidate,student\nitep,T-1,S-1\x00\n",
        b"vendor,candidate,student\n" + b"itep," + b"x" * 300 + b",S-1\n",
        b"vendor,candidate,student\nitep,T-1," + b"y" * 300 + b"\n",
        "vendor,candidate,student\nitep,T-1,S-\u202e1\u0085\n".encode(),
        b"\xef\xbb\xbf",
        b"",
    ]
    for body in hostile:
        status, answer = await csv(admin, body)
        assert 400 <= status < 500, (body[:40], status, answer)
        assert answer["error"], body[:40]
    status, listed = await admin.call("GET", "/v1/crosswalk")
    assert (status, listed["mappings"]) == (200, [])
