from enum import StrEnum


class Vendor(StrEnum):
    ITEP = "itep"
    INSPERA = "inspera"
    SYNAP = "synap"
    TESTPRESS = "testpress"
