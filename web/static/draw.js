// Draw page: Pointer Events (mouse, pen, touch) on a canvas; predict on each stroke end.
"use strict";
(function () {
  var canvas = document.getElementById("pad");
  var ctx = canvas.getContext("2d");
  var predictionEl = document.getElementById("prediction");
  var errorEl = document.getElementById("draw-error");
  var probsEl = document.getElementById("probs");
  var preview = document.getElementById("preview");
  var previewEmpty = document.getElementById("preview-empty");
  var modelInfo = document.getElementById("model-info");
  var INK = "#ffffff", PAPER = "#000000";
  var strokes = {};      // pointerId -> last point of the stroke in progress
  var hasInk = false;
  var generation = 0;    // bumped by Clear: answers for an older drawing are dropped
  var inflight = false, again = false;

  // Ten probability bars, 0..9.
  var rows = [];
  for (var d = 0; d < 10; d++) {
    var li = document.createElement("li");
    li.dataset.digit = String(d);
    li.innerHTML = '<span class="digit"></span><span class="track"><span class="bar"></span></span><span class="pct">–</span>';
    li.querySelector(".digit").textContent = String(d);
    probsEl.appendChild(li);
    rows.push(li);
  }

  function reset() {
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = INK; ctx.fillStyle = INK;
    ctx.lineWidth = Math.round(canvas.width / 14);
    ctx.lineCap = "round"; ctx.lineJoin = "round";
    hasInk = false;
  }

  function point(e) {
    var rect = canvas.getBoundingClientRect();
    var sx = canvas.width / (canvas.clientWidth || rect.width);
    var sy = canvas.height / (canvas.clientHeight || rect.height);
    return { x: (e.clientX - rect.left - canvas.clientLeft) * sx, y: (e.clientY - rect.top - canvas.clientTop) * sy };
  }

  function dot(p) {
    ctx.beginPath();
    ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function line(a, b) {
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  canvas.addEventListener("pointerdown", function (e) {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    e.preventDefault();
    canvas.dataset.pointerType = e.pointerType || "";
    try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* synthetic pointers cannot be captured */ }
    var p = point(e);
    strokes[e.pointerId] = p;
    dot(p);
    hasInk = true;
  });

  canvas.addEventListener("pointermove", function (e) {
    var last = strokes[e.pointerId];
    if (!last) return;
    e.preventDefault();
    var events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    if (!events.length) events = [e];
    for (var i = 0; i < events.length; i++) {
      var p = point(events[i]);
      line(last, p);
      last = p;
    }
    strokes[e.pointerId] = last;
  });

  function end(e) {
    if (!strokes[e.pointerId]) return;
    delete strokes[e.pointerId];
    if (Object.keys(strokes).length === 0 && hasInk) predict();
  }
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  // Belt and braces for browsers without touch-action support: never scroll while drawing.
  canvas.addEventListener("touchstart", function (e) { e.preventDefault(); }, { passive: false });
  canvas.addEventListener("touchmove", function (e) { e.preventDefault(); }, { passive: false });
  canvas.addEventListener("contextmenu", function (e) { e.preventDefault(); });

  document.getElementById("clear").addEventListener("click", function () {
    generation++;
    strokes = {};
    reset();
    predictionEl.textContent = "Draw a digit";
    df.show(errorEl, "");
    showProbabilities(null);
    preview.hidden = true;
    preview.removeAttribute("src");
    previewEmpty.hidden = false;
  });

  function showProbabilities(probs) {
    var best = -1;
    if (probs) best = probs.indexOf(Math.max.apply(null, probs));
    rows.forEach(function (li, i) {
      var p = probs ? probs[i] : 0;
      li.querySelector(".bar").style.width = (p * 100).toFixed(1) + "%";
      li.querySelector(".pct").textContent = probs ? df.pct(p) : "–";
      li.classList.toggle("best", i === best);
      li.setAttribute("aria-label", i + ": " + (probs ? df.pct(p) : "no prediction"));
    });
  }

  function showResult(result, imageUrl) {
    predictionEl.textContent = result.digit + " (" + df.pct(result.confidence) + ")";
    df.show(errorEl, "");
    showProbabilities(result.probabilities);
    if (imageUrl) {
      preview.src = imageUrl;
      preview.hidden = false;
      previewEmpty.hidden = true;
    }
    if (result.model) {
      var m = result.model;
      modelInfo.textContent = "Model " + m.architecture + " " + m.version +
        (m.test_accuracy != null ? ", " + df.pct(m.test_accuracy) + " accurate on the MNIST test set" : "");
    }
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // A slow answer (202): poll the job, then read its one result.
  function waitForJob(jobId, gen) {
    var base = "/api/v1/jobs/" + encodeURIComponent(jobId);
    function poll() {
      if (gen !== generation) return Promise.resolve(null);
      return df.api(base).then(function (r) {
        if (r.body.status === "queued" || r.body.status === "running") return sleep(300).then(poll);
        return df.api(base + "/results?limit=1&include=probabilities").then(function (res) {
          var item = res.body.items[0];
          if (item.error) throw new df.ApiFailure(422, item.error.code, item.error.message);
          if (item.status !== "done") throw new df.ApiFailure(503, "unavailable", "");
          item.model = r.body.model;
          return { result: item, image: base + "/results/0.png" };
        });
      });
    }
    return poll();
  }

  function predict() {
    if (inflight) { again = true; return; }
    inflight = true; again = false;
    var gen = generation;
    predictionEl.setAttribute("aria-busy", "true");
    df.api("/api/v1/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: canvas.toDataURL("image/png") })
    }).then(function (r) {
      if (r.status === 202) return waitForJob(r.body.job_id, gen);
      return { result: r.body, image: r.body.image };
    }).then(function (out) {
      if (out && gen === generation) showResult(out.result, out.image);
    }).catch(function (err) {
      if (gen !== generation) return;
      predictionEl.textContent = "No prediction";
      showProbabilities(null);
      df.show(errorEl, df.friendly(err));
    }).then(function () {
      inflight = false;
      predictionEl.removeAttribute("aria-busy");
      if (again && hasInk) predict();
    });
  }

  reset();
  showProbabilities(null);
})();
