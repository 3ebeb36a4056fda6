"""Recipe section `report`: what the run report (runs/<name>/report.html) needs beyond the run itself.

The section changes no produced artifact, so no stage fingerprint reads it; a recipe without it has the same
recipe digest as before the section existed (``Recipe.digest`` leaves an absent section out).
"""

from __future__ import annotations

from pydantic import Field

from distill.config.base import Section


class Prices(Section):
    device_hour: float | None = Field(None, ge=0, description="Price of one accelerator for one hour.")
    input_per_million: float | None = Field(
        None, ge=0, description="Price of a million prompt tokens sent to an API teacher."
    )
    output_per_million: float | None = Field(
        None, ge=0, description="Price of a million completion tokens an API teacher returned."
    )
    currency: str = Field("$", max_length=8, description="Printed before every price.")


class ReportConfig(Section):
    prices: Prices | None = Field(
        None, description="With prices the report's cost table adds an estimated price per stage."
    )
