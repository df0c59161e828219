"""The markdown report: targets, the tables of every section, and the kept notes."""

from __future__ import annotations

import json
from pathlib import Path

from benchkit.common import f0, f2, mb, md_table
from digitflow.settings import get_settings

# Targets of issue 7 (ratios measured in the same run).
TARGETS = {
    "bulk_ratio_min": 0.75, "bulk_ratio_aim": 0.9, "bulk_ips_min": 2500, "bulk_ips_aim": 4000,
    "p50_max_ms": 10, "p99_max_ms": 40, "c32_rps_min": 500, "c32_rps_aim": 1000,
    "vs_keras_loop": 20, "vs_one_task": 5, "worker_rss_mb": 300, "web_growth_mb": 64,
    "png28_cpu_ms": 0.3, "jpeg12mp_cpu_ms": 30,  # issue 13: the front end's cost
}


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def targets(R: dict) -> list[list]:
    T = TARGETS
    rows = []
    bulk, pipe = R.get("bulk"), R.get("pipeline")
    if bulk and pipe:
        ratio = bulk_ratio(R)
        rows.append(["bulk / in-process pipeline", f">= {T['bulk_ratio_min']} (aim {T['bulk_ratio_aim']})",
                     f"{ratio:.2f}x", verdict(ratio >= T["bulk_ratio_min"])])
    if bulk:
        rows.append(["bulk images/s (shipped model)", f">= {T['bulk_ips_min']:,} (aim {T['bulk_ips_aim']:,})",
                     f0(bulk["images_per_s"]), verdict(bulk["images_per_s"] >= T["bulk_ips_min"])])
    d = {r["concurrency"]: r for r in R.get("drawings", [])}
    if 1 in d:
        rows.append(["drawing p50 at concurrency 1", f"<= {T['p50_max_ms']} ms", f"{d[1]['p50_ms']:.1f} ms",
                     verdict(d[1]["p50_ms"] <= T["p50_max_ms"])])
        rows.append(["drawing p99 at concurrency 1", f"<= {T['p99_max_ms']} ms", f"{d[1]['p99_ms']:.1f} ms",
                     verdict(d[1]["p99_ms"] <= T["p99_max_ms"])])
    lit = (R.get("peers") or {}).get("litserve")
    if 1 in d and lit:
        l1 = {r["concurrency"]: r for r in lit["rows"]}.get(1)
        if l1:
            rows.append(["drawing p50 / p99 below LitServe's (aim)", f"{l1['p50_ms']:.1f} / {l1['p99_ms']:.1f} ms",
                         f"{d[1]['p50_ms']:.1f} / {d[1]['p99_ms']:.1f} ms",
                         verdict(d[1]["p50_ms"] < l1["p50_ms"] and d[1]["p99_ms"] < l1["p99_ms"])])
    if 32 in d:
        rows.append(["predictions/s at concurrency 32", f">= {T['c32_rps_min']} (aim {T['c32_rps_aim']:,})",
                     f"{f0(d[32]['rps'])} (load generator: {d[32]['client_cpu_cores']:.2f} cores)",
                     verdict(d[32]["rps"] >= T["c32_rps_min"])])
    peers = R.get("peers") or {}
    if bulk and peers.get("keras_loop"):
        r = bulk["images_per_s"] / peers["keras_loop"]["images_per_s"]
        rows.append(["bulk vs per-image model.predict loop", f">= {T['vs_keras_loop']}x", f"{r:,.0f}x",
                     verdict(r >= T["vs_keras_loop"])])
    if bulk and peers.get("one_task"):
        r = bulk["images_per_s"] / peers["one_task"]["images_per_s"]
        rows.append(["bulk vs one Celery task per image", f">= {T['vs_one_task']}x", f"{r:,.1f}x",
                     verdict(r >= T["vs_one_task"])])
    png = next((r for r in R.get("frontend", []) if r["case"].startswith("28x28 MNIST")), None)
    photo = next((r for r in R.get("frontend", []) if r["case"].startswith("12 MP")), None)
    if png:
        rows.append(["front end: CPU per 28x28 PNG (issue 13)", f"<= {T['png28_cpu_ms']} ms", f"{png['cpu_ms']:.3f} ms",
                     verdict(png["cpu_ms"] <= T["png28_cpu_ms"])])
    if photo:
        r = photo
        rows.append(["front end: CPU per 12 MP JPEG (issue 13)", f"<= {T['jpeg12mp_cpu_ms']} ms", f"{r['cpu_ms']:.1f} ms",
                     verdict(r["cpu_ms"] <= T["jpeg12mp_cpu_ms"])])
    res = R.get("resources")
    if res:
        worst = max(rss for k in ("bulk", "interactive") for _, _, rss in res["worker_rss_after_100k"].get(k, []))
        rows.append(["worker RSS (largest process, model loaded)", f"<= {T['worker_rss_mb']} MB", mb(worst),
                     verdict(worst <= T["worker_rss_mb"] * 2**20)])
        g = res["web"]["growth"]
        rows.append(["web RSS growth through the 100k-image ZIP", f"<= {T['web_growth_mb']} MB", mb(g),
                     verdict(g <= T["web_growth_mb"] * 2**20)])
    return rows


def bulk_ratio(R: dict) -> float | None:
    """Bulk end to end / the in-process pipeline: the median of the ratios of each bulk run to the pipeline passes
    around it where the run paired them, else the two sections' medians."""
    bulk, pipe = R.get("bulk"), R.get("pipeline")
    if not bulk or not pipe:
        return None
    if bulk.get("paired"):
        return bulk["paired"]["ratio"]
    return bulk["images_per_s"] / pipe["cores"]["images_per_s"]


def targets_16(R: dict) -> list[list]:
    """Issue 16's targets: the drawing path against LitServe in the same run, bulk against the pipeline."""
    rows = []
    d = {r["concurrency"]: r for r in R.get("drawings", [])}
    lit = (R.get("peers") or {}).get("litserve")
    lr = {r["concurrency"]: r for r in lit["rows"]} if lit else {}
    if 1 in d and 1 in lr:
        ratio = d[1]["p50_ms"] / lr[1]["p50_ms"]
        rows.append(["drawing p50 at concurrency 1 / LitServe's", "<= 1.0x (aim 0.8x)",
                     f"{ratio:.2f}x ({d[1]['p50_ms']:.1f} / {lr[1]['p50_ms']:.1f} ms)", verdict(ratio <= 1.0)])
    if 32 in d and 32 in lr:
        ratio = d[32]["rps"] / lr[32]["rps"]
        rows.append(["predictions/s at concurrency 32 / LitServe's", ">= 1.0x (aim 1.5x)",
                     f"{ratio:.2f}x ({f0(d[32]['rps'])} / {f0(lr[32]['rps'])})", verdict(ratio >= 1.0)])
    if 1 in d:
        ratio = d[1]["p99_ms"] / d[1]["p50_ms"]
        rows.append(["drawing p99 / p50 at concurrency 1", "<= 2x", f"{ratio:.2f}x", verdict(ratio <= 2.0)])
        calls = d[1].get("redis_calls_per_request")
        if calls is not None:
            rows.append(["Redis commands per drawing (concurrency 1)", "<= 8", f"{calls:.1f}", verdict(calls <= 8)])
    bulk, pipe = R.get("bulk"), R.get("pipeline")
    if bulk and pipe:
        ratio = bulk_ratio(R)
        rows.append(["bulk 10k ZIP / in-process pipeline", ">= 0.85x (aim 0.9x)", f"{ratio:.2f}x",
                     verdict(ratio >= 0.85)])
    first = (bulk or {}).get("first")
    if first:  # paired: each against the pipeline around it, since this VM's speed drifts within a run
        unpaired = f"{f0(first['images_per_s'])} / {f0(bulk['images_per_s'])} images/s"
        if "paired_ratio" in first:
            ratio = first["paired_ratio"] / bulk["paired"]["ratio"]
            name, how = " (paired)", (f"{first['paired_ratio']:.2f}x the pipeline around it / "
                                      f"{bulk['paired']['ratio']:.2f}x; unpaired {unpaired}")
        else:
            ratio, name, how = first["images_per_s"] / bulk["images_per_s"], "", unpaired
        rows.append([f"bulk: first job after a start / later ones{name}", ">= 0.9x (within 10%)",
                     f"{ratio:.2f}x ({how})", verdict(ratio >= 0.9)])
    return rows


def render(R: dict, args) -> str:
    m = R["machine"]
    card = R["model"]
    L = ["# Benchmarks", ""]
    L += [f"Generated by `scripts/bench.py{' --smoke' if args.smoke else ''}` on {R['date']} "
          f"(whole run: {R['total_s'] / 60:.1f} min). Re-run with `.venv/bin/python scripts/bench.py`; "
          "every ratio below compares numbers measured in this same run on this same machine.", ""]
    if args.smoke:
        L += ["**Smoke run** (tiny samples): the numbers only show that the script works.", ""]
    L += ["## Machine", ""]
    L += [md_table(["", ""], [
        ["CPU", m["cpu"]],
        ["cores", f"{m['cores']} ({m['usable_cores']} usable by this process); no GPU used"],
        ["RAM", mb(m["ram_bytes"]) if m["ram_bytes"] else "unknown"],
        ["OS", m["os"]],
        ["Python", m["python"]],
        ["redis-server", m["redis_server"]],
        ["libraries", ", ".join(f"{k} {v}" for k, v in m["packages"].items())],
        ["load average at start / end", f"{m['loadavg_start'][0]:.2f} / {R['loadavg_end'][0]:.2f} (1 min)"],
        ["model", f"{card['architecture']} {card['version']}, {card['macs_per_image'] / 1e6:.1f} M MAC/image, "
                  f"{card['parameters']:,} parameters, test accuracy {card['test_accuracy']:.4f}"],
        ["service", "the stack of scripts/stack.py: redis-server (append-only file, everysec), bulk worker "
                    "(2 processes), drawing worker (python -m worker.drawings: Redis Stream consumer), gunicorn "
                    f"({R.get('web_processes', 1)} process(es) x 32 threads); rate limit off"
                    if R.get("owned") else f"running service at {R.get('url')}"],
    ])]
    L += ["", "## Targets (issue 7)", ""]
    rows = targets(R)
    L += [md_table(["target", "wanted", "measured", ""], rows) if rows else "(sections not run)"]
    rows = targets_16(R)
    if rows:
        L += ["", "## Targets (issue 16: ratios in this run)", "", md_table(["target", "wanted", "measured", ""], rows)]

    if "engine" in R:
        L += ["", "## 1. Engine: model only, inputs already normalised", "",
              "Median time per call over repeated calls (random inputs; speed does not depend on them). "
              "ONNX Runtime with 1 intra-op thread is what each bulk worker process uses (2 processes share "
              "the 2 cores); all-core threads is what the interactive worker uses.", ""]
        by: dict = {}
        for r in R["engine"]:
            by.setdefault((r["model"], r["backend"], r["threads"]), {})[r["batch"]] = r
        batches = sorted({r["batch"] for r in R["engine"]})
        head = ["model", "backend", "threads"] + [f"batch {b}: images/s (ms/call)" for b in batches]
        body = [[k[0], k[1], k[2]] + [f"{f0(v[b]['images_per_s'])} ({v[b]['ms_per_call']:.2f} ms)" if b in v else "–"
                                      for b in batches] for k, v in by.items()]
        L += [md_table(head, body)]

    if "frontend" in R:
        L += ["", "## 1b. Front end alone: decode + `digitflow/frontend`, CPU per image", "",
              "`digitflow.imaging.normalise_bytes` in one process (process CPU time, so the other core's load "
              "does not count); median of the repeats. The 28x28 PNG case is what bulk jobs of MNIST-style "
              "digits pay per image; the photo is decoded at 1/8 size by libjpeg's DCT scaling.", ""]
        L += [md_table(["input", "images", "mean file size", "CPU ms per image", "runs"],
                       [[r["case"], f"{r['images']:,}", f"{r['bytes']:,} B", f"{r['cpu_ms']:.3f}",
                         ", ".join(f"{v:.3f}" for v in r["runs"])] for r in R["frontend"]])]

    if "pipeline" in R:
        p = R["pipeline"]
        L += ["", "## 2. In-process pipeline (the ceiling)", "",
              f"`worker.pipeline.run_batch` (decode + normalise + model, cut into chunks as a job is: "
              f"{get_settings().chunk_size}, the last two chunks' worth in quarters; model batches of "
              f"{get_settings().batch_size}) on the same {p['cores']['images']:,} MNIST test PNGs, "
              "one process per core (multiprocessing, one ONNX thread each), no HTTP, Redis or Celery. "
              "Median of the runs.", ""]
        rows = [[f"{v['processes']}", f0(v["images_per_s"]), ", ".join(f0(r) for r in v["runs"]),
                 f"{v['accuracy']:.4f}"] for v in (p.get("one"), p["cores"]) if v]
        L += [md_table(["processes", "images/s", "runs", "accuracy"], rows)]

    if "bulk" in R:
        b = R["bulk"]
        ratio = bulk_ratio(R)
        L += ["", "## 3. Bulk end to end", "",
              f"A ZIP of {b['images']:,} MNIST test PNGs ({R['zip_bytes'] / 2**20:.1f} MB) streamed to "
              "`POST /api/v1/jobs` and polled (`GET /api/v1/jobs/{id}` every 250 ms, as `digitflow submit` does) until it finished; time from the "
              "first byte of the upload to the job's `finished_at`. Median of the runs that follow the first job after "
              "the service started (no warm-up job: the workers load their models as they start)"
              + (f"; that first job: {f0(b['first']['images_per_s'])} images/s, {b['first']['wall_s']:.2f} s"
                 if b.get("first") else "")
              + (f", against {f0(b['first']['pipeline_images_per_s'])} images/s of the pipeline around it"
                 if b.get("first", {}).get("pipeline_images_per_s") else "") + "." + (
                  " The ratio is the median over the runs of each run's rate over the geometric mean of the in-process "
                  "pipeline's passes right before and right after it (pipeline passes, in order, the first before the "
                  "first job: " + ", ".join(f0(p) for p in b["paired"]["pipeline_runs"])
                  + " images/s; ratios " + ", ".join(f"{x:.2f}" for x in b["paired"]["ratios"]) + ")."
                  if b.get("paired") else ""), ""]
        L += [md_table(["images/s", "runs", "ratio to in-process pipeline", "upload (until 202)", "total",
                        "accuracy of returned results", "missing"],
                       [[f0(b["images_per_s"]), ", ".join(f0(r) for r in b["runs"]),
                         f"{ratio:.2f}x" if ratio else "–", f"{b['upload_s']:.2f} s", f"{b['wall_s']:.2f} s",
                         f"{b.get('accuracy', float('nan')):.4f}", b.get("missing", "–")]])]
        L += ["", "CPU used during the median run (cores, averaged over its duration) and per image:", ""]
        L += [md_table(["process", "cores busy", "CPU ms per image"],
                       [[k, f"{v:.2f}", f"{b['cpu_s_per_image'][k] * 1e3:.3f}"] for k, v in b["cpu_cores"].items()])]
        if b.get("redis_calls_per_image") is not None:
            L += ["", f"Redis per image: {b['redis_calls_per_image']:.2f} commands, "
                      f"{b['redis_in_bytes_per_image']:,.0f} bytes in, {b['redis_out_bytes_per_image']:,.0f} bytes out "
                      "(INFO commandstats / stats deltas over the run, including polling)."]

    if "drawings" in R:
        L += ["", "## 4. Single drawings end to end", "",
              f"`POST /api/v1/predict` with the draw page's body (JSON data URL of a 280x280 PNG, a test digit drawn "
              f"dark on white), {R['drawings'][0]['requests']:,} requests per concurrency level after a warm-up, from "
              "threads with one keep-alive connection each. The load generator runs on the same cores; its CPU is "
              "shown in cores (1.00 = one core busy).", ""]
        L += [md_table(["concurrency", "p50", "p90", "p99", "max", "requests/s", "statuses", "accuracy",
                        "load generator CPU", "server CPU (cores)"],
                       [[r["concurrency"], f"{r['p50_ms']:.1f} ms", f"{r['p90_ms']:.1f} ms", f"{r['p99_ms']:.1f} ms",
                         f"{r['max_ms']:.1f} ms", f0(r["rps"]), json.dumps(r["statuses"]),
                         f2(r["accuracy"]) if r["accuracy"] is not None else "–", f"{r['client_cpu_cores']:.2f}",
                         ", ".join(f"{k} {v:.2f}" for k, v in r.get("server_cpu", {}).items())]
                        for r in R["drawings"]])]
        calls = [r.get("redis_calls_per_request") for r in R["drawings"] if r.get("redis_calls_per_request")]
        if calls:
            L += ["", f"Redis commands per prediction (web, worker and broker together): "
                      f"{', '.join(f'{v:.1f}' for v in calls)} at concurrency "
                      f"{', '.join(str(r['concurrency']) for r in R['drawings'])}."]

    peers = R.get("peers")
    if peers:
        L += ["", "## 5. Naive peers on the same images and machine", ""]
        rows = []
        bulk_ips = R["bulk"]["images_per_s"] if "bulk" in R else None
        if peers.get("keras_loop"):
            k = peers["keras_loop"]
            rows.append(["per-image Keras `model.predict` loop (decode + normalise + predict, one process)",
                         f"{k['images']:,}", f0(k["images_per_s"]), f"{k['ms_per_image']:.1f} ms per image",
                         f"{bulk_ips / k['images_per_s']:,.0f}x" if bulk_ips else "–"])
        if peers.get("one_task"):
            o = peers["one_task"]
            rows.append([f"one Celery task per image ({o['processes']} worker processes, result backend Redis)",
                         f"{o['images']:,}", f0(o["images_per_s"]),
                         f"one task's round trip p50 {o['round_trip_p50_ms']:.1f} ms",
                         f"{bulk_ips / o['images_per_s']:,.1f}x" if bulk_ips else "–"])
        if rows:
            L += ["Bulk throughput (service column: the bulk end-to-end rate of section 3 divided by the peer's):", ""]
            L += [md_table(["peer", "images", "images/s", "note", "service / peer"], rows)]
        lit = peers.get("litserve")
        if lit:
            ours = {r["concurrency"]: r for r in R.get("drawings", [])}
            L += ["", f"LitServe {m['packages']['litserve']} with dynamic batching (max batch 64, timeout 1 ms, "
                      f"{'ZeroMQ' if lit['fast_queue'] else 'multiprocessing'} queue, 1 API server + 1 inference "
                      "worker, the same Engine with all-core threads and the same decode + normalise; "
                      "`scripts/bench_peers/litserve_server.py`), same bodies and load generator as section 4:", ""]
            body = []
            for r in lit["rows"]:
                o = ours.get(r["concurrency"])
                body.append([r["concurrency"], f"{r['p50_ms']:.1f} ms", f"{r['p90_ms']:.1f} ms", f"{r['p99_ms']:.1f} ms",
                             f0(r["rps"]), json.dumps(r["statuses"]), f"{r['client_cpu_cores']:.2f}",
                             f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f} ms" if o else "–",
                             f"{o['rps'] / r['rps']:.2f}x" if o else "–"])
            L += [md_table(["concurrency", "LitServe p50", "p90", "p99", "requests/s", "statuses", "load gen. CPU",
                            "service p50 / p99", "service / LitServe req/s"], body)]
            other = peers.get("litserve_other")
            if other:
                L += ["", f"The other LitServe queue ({'ZeroMQ' if other['fast_queue'] else 'multiprocessing'}): " +
                      "; ".join(f"c{r['concurrency']}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                                f"{f0(r['rps'])} req/s" for r in other["rows"]) +
                      ". The faster of the two is shown above."]

    res = R.get("resources")
    if res:
        L += ["", "## 6. Resources", ""]
        rows = []
        for key, label in (("worker_rss", "after the bulk runs"), ("worker_rss_after_100k", "after the 100k job")):
            for name, procs in res[key].items():
                rows.append([name, label, ", ".join(f"{role} {mb(rss)}" for _, role, rss in procs)])
        L += ["Worker RSS with the model loaded (a Celery worker is a main process plus, for the bulk worker, its "
              "pool processes, which load the model):", ""]
        L += [md_table(["worker", "when", "RSS per process"], rows)]
        w = res["web"]
        z = res["big_zip"]
        L += ["", f"Web (gunicorn: {w['processes']} processes, master and worker) RSS through a "
                  f"{z['images']:,}-image ZIP ({z['bytes'] / 2**20:.1f} MB; MNIST test digits with random shifts of up "
                  f"to 2 px), streamed from a file on disk; sampled every 50 ms ({w['samples']} samples) during the "
                  f"{w['upload_s']:.1f} s upload:", ""]
        L += [md_table(["", "before", "peak during", "after (2 s)", "after the job finished", "growth (peak - before)"],
                       [["all web processes", mb(w["before_total"]), mb(w["peak_total"]), mb(w["after_total"]),
                         mb(w["after_job_total"]), mb(w["growth"])],
                        ["largest web process", mb(w["before_max"]), mb(w["peak_max"]), mb(w["after_max"]), "–",
                         mb(w["peak_max"] - w["before_max"])]])]
        q = res["redis_queued"]
        L += ["", f"Redis memory per queued image: the bulk worker stopped, the {q['images']:,} images uploaded, "
                  f"`INFO memory` used_memory {mb(q['used_before'])} -> {mb(q['used_after'])}: "
                  f"**{q['bytes_per_image']:,.0f} bytes per queued image** (the PNG itself averages "
                  f"{q['png_bytes_per_image']:,.0f} bytes; the rest is its index and length in the chunk's "
                  "packed value, the file name in the names list and the chunk's task message)."]
        st = res.get("redis_stored")
        if st:
            L += ["", f"Once the job finished (results kept until the job expires): used_memory "
                      f"{mb(st['used_after_job'])}, **{st['bytes_per_image']:,.0f} bytes per finished image** (the "
                      "result JSON with 10 probabilities, the digit the model saw packed with its chunk's, the upload "
                      "itself kept once as its preview, the file name)."]
        d = res["drain"]
        L += ["", f"With the worker started again, the {d['images']:,} queued images drained at "
                  f"**{f0(d['images_per_s'])} images/s** ({d['status']}, {d['failed']} failed; rate from the first "
                  "result to the last, with the queue full all the time). CPU (cores): " +
                  ", ".join(f"{k} {v:.2f}" for k, v in d["cpu_cores"].items()) + "."]

    sc = R.get("scaling")
    if sc:
        L += ["", "## 7. Scaling: bulk worker processes", "",
              f"The bulk job of section 3 ({R['bulk']['images']:,} images) with the bulk worker restarted at "
              "1 and 2 processes (`-c N`, one ONNX thread each). Median of the runs.", ""]
        base1 = sc.get(1, {}).get("images_per_s")
        L += [md_table(["worker processes", "images/s", "runs", "speed-up", "CPU (cores)"],
                       [[n, f0(v["images_per_s"]), ", ".join(f0(r) for r in v["runs"]),
                         f"{v['images_per_s'] / base1:.2f}x" if base1 else "–",
                         ", ".join(f"{k} {c:.2f}" for k, c in v["cpu_cores"].items())] for n, v in sorted(sc.items())])]
    prof = R.get("profile")
    if prof:
        L += ["", "## Profiles (py-spy, during a bulk run and a drawings run)", "",
              "`bulk`: all samples of the bulk worker and its pool processes (ONNX Runtime runs without the GIL); "
              "the others: only samples holding the GIL (Python CPU time, not waits on Redis).", ""]
        for name, p in prof.items():
            L += [f"`{name}` ({p['samples']:,} samples): the project's frames by inclusive share", "",
                  md_table(["frame", "inclusive %"], [[f"`{f}`", f"{v:.1f}"] for f, v in p["inclusive"]]), "",
                  "Top self time: " + "; ".join(f"`{f}` {v:.1f}%" for f, v in p["self"]) + "", ""]
    mc = R.get("metrics_check")
    if mc:
        L += ["", "## /metrics against this run", "",
              "The service's own counters (`GET /metrics`, scraped when the service was up and again at the end) "
              "against what this script counted: images in finished bulk jobs plus answered drawings, and "
              "drawings answered 200. Warm-ups included on both sides.", "",
              md_table(["figure", "counted by bench.py", "delta on /metrics", ""],
                       [["`digitflow_images_total` (all outcomes)", f0(mc["images"]["bench"]), f0(mc["images"]["metrics"]),
                         "agrees" if mc["images"]["bench"] == mc["images"]["metrics"] else "**differs**"],
                        ["`digitflow_http_request_duration_seconds_count{route=\"/api/v1/predict\",status=\"200\"}`",
                         f0(mc["predict_200"]["bench"]), f0(mc["predict_200"]["metrics"]),
                         "agrees" if mc["predict_200"]["bench"] == mc["predict_200"]["metrics"] else "**differs**"]])]
    L += ["", "See [scaling.md](scaling.md) for what these numbers mean at 1 million images per hour.", ""]
    return "\n".join(L)


NOTES_BEGIN, NOTES_END = "<!-- notes: kept by scripts/bench.py -->", "<!-- /notes -->"


def kept_notes(path: Path) -> str:
    """The hand-written analysis between the notes markers of the existing report, kept across re-runs."""
    try:
        old = path.read_text()
    except OSError:
        return ""
    start, end = old.find(NOTES_BEGIN), old.find(NOTES_END)
    if start < 0 or end < start:
        return ""
    return "\n" + old[start : end + len(NOTES_END)] + "\n"
