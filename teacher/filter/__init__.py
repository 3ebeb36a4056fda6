"""Stage `filter`: traces (generated or published) -> verified rows -> kept SFT rows + report (stage.py);
readers for published shapes, the filter steps, dedup and decontamination beside it."""
