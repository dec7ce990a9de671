"""Generates labelled_history.csv for the predictive-maintenance example: hourly vibration features per machine,
labelled with whether the machine failed within 7 days. Failures follow high vibration and temperature, with
noise, so the models have a real but imperfect signal to learn. Deterministic: the same file every run."""

import csv
import math
import random
from datetime import datetime, timedelta, timezone

random.seed(20261128)
start = datetime(2026, 1, 1, tzinfo=timezone.utc)
rows = []
for index in range(2000):
    machine = f"press-{index % 12 + 1:02d}"
    wear = random.random()  # hidden condition of the machine at this hour
    rms_mean = 0.8 + 1.2 * wear + random.gauss(0, 0.25)
    rms_max = rms_mean * (1.3 + 0.4 * random.random()) + random.gauss(0, 0.1)
    peak_p99 = 2.5 + 6.0 * wear + random.gauss(0, 1.0)
    temperature_max = 45 + 30 * wear + random.gauss(0, 6)
    score = 6.0 * (wear - 0.72) + random.gauss(0, 0.8)
    failed = 1 / (1 + math.exp(-score)) > 0.5
    # A few sensors drop out: missing values for the imputation step.
    if random.random() < 0.02:
        temperature_max = None
    rows.append({
        "machine": machine,
        "window_end": (start + timedelta(hours=index)).isoformat().replace("+00:00", "Z"),
        "rms_mean": round(rms_mean, 4),
        "rms_max": round(rms_max, 4),
        "peak_p99": round(peak_p99, 4),
        "temperature_max": "" if temperature_max is None else round(temperature_max, 2),
        "failed_within_7d": str(failed).lower(),
    })

with open("labelled_history.csv", "w", newline="") as output:
    writer = csv.DictWriter(output, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
