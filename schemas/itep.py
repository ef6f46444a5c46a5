"""iTEP results webhook: the JSON inside the form field `data`.

iTEP sends most numbers as strings ("4.5") and a few as numbers (`Writing_Question_Count`), so every
number field accepts both; an empty string means "not given".

Only `TestID` and `Status` are required: every other field may be absent, null or "" (a Finished call
carries no scores; section fields appear only for the sections the exam has). Fields the event does
not carry (`Writing_Question_Count`, `Writing_Question_<n>`, `Writing_Answer_<n>`) are not decoded,
so an odd value there cannot reject a result. The value rules are in `workers/vendors/itep.py`.
"""

import msgspec

# A JSON number or its string form; `workers` turns it into a float (or None for "").
Numeric = float | str | None


class ItepResult(msgspec.Struct, frozen=True, kw_only=True):
    OID: str | int | None = None
    TestID: str
    Status: str
    Duration: Numeric = None
    TestDate: str | None = None
    TestMonth: Numeric = None
    TestDay: Numeric = None
    TestYear: Numeric = None
    score_report_url: str | None = None
    Overall_Level: Numeric = None
    Overall_cefr: str | None = None
    Grammar_Level: Numeric = None
    Grammar_Score: Numeric = None
    Grammar_Percent: Numeric = None
    Grammar_cefr: str | None = None
    Listening_Level: Numeric = None
    Listening_Score: Numeric = None
    Listening_Percent: Numeric = None
    Listening_cefr: str | None = None
    Reading_Level: Numeric = None
    Reading_Score: Numeric = None
    Reading_Percent: Numeric = None
    Reading_cefr: str | None = None
    Writing_Level: Numeric = None
    Writing_Score: Numeric = None
    Writing_Percent: Numeric = None
    Writing_cefr: str | None = None
    Speaking_Level: Numeric = None
    Speaking_Score: Numeric = None
    Speaking_Percent: Numeric = None
    Speaking_cefr: str | None = None


ITEP_SECTIONS = ("Grammar", "Listening", "Reading", "Writing", "Speaking")
