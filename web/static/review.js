// Review page of a bulk job: one digit at a time; accept or correct it with the keyboard, mouse or touch.
"use strict";
(function () {
  var main = document.getElementById("main");
  var jobId = main.dataset.jobId;
  var base = "/api/v1/jobs/" + encodeURIComponent(jobId);
  var modeSel = document.getElementById("mode");
  var progressEl = document.getElementById("review-progress");
  var savingEl = document.getElementById("review-saving");
  var noteEl = document.getElementById("review-note");
  var errorEl = document.getElementById("review-error");
  var card = document.getElementById("review-card");
  var emptyEl = document.getElementById("review-empty");
  var posEl = document.getElementById("review-pos");
  var fileEl = document.getElementById("review-file");
  var original = document.getElementById("review-original");
  var originalMissing = document.getElementById("review-original-missing");
  var seen = document.getElementById("review-seen");
  var seenMissing = document.getElementById("review-seen-missing");
  var digitEl = document.getElementById("review-digit");
  var confEl = document.getElementById("review-confidence");
  var topEl = document.getElementById("review-top");
  var stateEl = document.getElementById("review-state");
  var pad = card.querySelector(".digit-pad");
  var digitButtons = pad.querySelectorAll("button[data-digit]");
  var prevBtn = document.getElementById("review-prev");
  var nextBtn = document.getElementById("review-next");
  var acceptBtn = document.getElementById("review-accept");
  var endEl = document.getElementById("review-end");
  var announceEl = document.getElementById("review-announce");
  var MODES = ["low", "errors", "order"];
  var FINAL = ["succeeded", "failed", "cancelled"];

  var reviewable = [];   // the items with a prediction (status done), in input order
  var order = [];        // the same items in the order of the current mode
  var pos = 0;           // position in `order` of the item on screen
  var mode = "low";
  var loadError = "";
  var failures = {};     // index -> message, for labels that could not be saved
  var pending = 0;       // label requests in flight

  function corrected(item) { return item.label != null && item.label !== item.digit; }

  function byConfidence(a, b) { return a.confidence - b.confidence || a.index - b.index; }

  // The order is computed when the mode is chosen and then kept, so labelling never moves items around.
  function sorted(m) {
    var list = reviewable.slice();
    if (m === "order") list.sort(function (a, b) { return a.index - b.index; });
    else if (m === "errors") list.sort(function (a, b) { return Number(corrected(b)) - Number(corrected(a)) || byConfidence(a, b); });
    else list.sort(byConfidence);
    return list;
  }

  // Where a mode starts: the first item not yet reviewed (corrected ones first in `errors`, as the mode says).
  function start(m) {
    if (m === "errors") return 0;
    for (var i = 0; i < order.length; i++) if (order[i].label == null) return i;
    return 0;
  }

  function showErrors() {
    var keys = Object.keys(failures), parts = [];
    if (loadError) parts.push(loadError);
    if (keys.length === 1) parts.push(failures[keys[0]]);
    else if (keys.length > 1) parts.push("The labels of " + keys.length + " items could not be saved (last: " + failures[keys[keys.length - 1]] + ").");
    df.show(errorEl, parts.join(" "));
  }

  function showProgress() {
    var n = 0;
    reviewable.forEach(function (item) { if (item.label != null) n++; });
    progressEl.textContent = n + " of " + reviewable.length + " reviewed";
    savingEl.textContent = pending ? "Saving…" : "";
  }

  function stateText(item) {
    if (item.label == null) return "not reviewed";
    return item.label === item.digit ? "accepted" : "corrected to " + item.label;
  }

  function showState(item) {
    stateEl.textContent = stateText(item);
    stateEl.className = item.label == null ? "" : corrected(item) ? "review-corrected" : "review-accepted";
    digitButtons.forEach(function (b) { b.setAttribute("aria-pressed", String(Number(b.dataset.digit) === item.label)); });
  }

  function setImage(img, missing, src, alt) {
    missing.hidden = true;
    img.hidden = false;
    img.alt = alt;
    img.src = src;
    img.classList.toggle("loading", !img.complete);  // never show the previous item's picture as this one's
  }
  [[original, originalMissing], [seen, seenMissing]].forEach(function (pair) {
    pair[0].addEventListener("load", function () { pair[0].classList.remove("loading"); });
    pair[0].addEventListener("error", function () {
      pair[0].classList.remove("loading");
      pair[0].hidden = true;
      pair[1].hidden = false;
    });
  });

  function topThree(item) {
    topEl.textContent = "";
    var probs = item.probabilities;
    if (!probs) {
      var none = document.createElement("li");
      none.textContent = "No probabilities for this item.";
      topEl.appendChild(none);
      return;
    }
    probs.map(function (p, d) { return { d: d, p: p }; })
      .sort(function (a, b) { return b.p - a.p || a.d - b.d; })
      .slice(0, 3)
      .forEach(function (x, i) {
        var li = document.createElement("li");
        if (i === 0) li.className = "best";
        li.innerHTML = '<span class="digit"></span><span class="track"><span class="bar"></span></span><span class="pct"></span>';
        li.querySelector(".digit").textContent = String(x.d);
        li.querySelector(".bar").style.width = (x.p * 100).toFixed(1) + "%";
        li.querySelector(".pct").textContent = df.pct(x.p);
        li.setAttribute("aria-label", x.d + ": " + df.pct(x.p));
        topEl.appendChild(li);
      });
  }

  function imageUrls(item) {
    return [base + "/results/" + item.index + "/original", base + "/results/" + item.index + ".png"];
  }

  function show() {
    var item = order[pos];
    if (!item) return;
    var urls = imageUrls(item);
    posEl.textContent = "Item " + (pos + 1) + " of " + order.length;
    fileEl.textContent = item.filename;
    fileEl.title = item.filename;
    setImage(original, originalMissing, urls[0], "The uploaded image " + item.filename);
    setImage(seen, seenMissing, urls[1], "The 28×28 image the model saw for " + item.filename);
    digitEl.textContent = String(item.digit);
    confEl.textContent = "(" + df.pct(item.confidence) + " sure)";
    topThree(item);
    showState(item);
    prevBtn.disabled = pos === 0;
    nextBtn.disabled = pos === order.length - 1;
    endEl.hidden = true;
    announceEl.textContent = "Item " + (pos + 1) + " of " + order.length + ", " + item.filename + ": predicted " +
      item.digit + ", " + df.pct(item.confidence) + ", " + stateText(item) + ".";
    var next = order[pos + 1];
    if (next) imageUrls(next).forEach(function (u) { new Image().src = u; });  // the next pictures are ready in time
  }

  function go(delta) {
    var p = pos + delta;
    if (p < 0 || p >= order.length) {
      if (p >= order.length) { endEl.hidden = false; announceEl.textContent = "That was the last one."; }
      return;
    }
    pos = p;
    show();
  }

  function save(item, label) {
    item.label = label;
    item.corrected = corrected(item);
    var seq = item._seq = (item._seq || 0) + 1;
    pending++;
    showProgress();
    // One request at a time per item, so a quick correction of a correction lands in the right order.
    item._chain = (item._chain || Promise.resolve()).then(function () {
      return df.api(base + "/results/" + item.index + "/label", {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ label: label })
      });
    }).then(function (r) {
      item._saved = r.body.label;
      if (seq === item._seq) {
        item.label = r.body.label;
        item.corrected = r.body.corrected;
        delete failures[item.index];
      }
    }, function (err) {
      if (seq === item._seq) {
        item.label = item._saved;
        item.corrected = corrected(item);
        failures[item.index] = "The label of " + item.filename + " was not saved: " + df.friendly(err);
      }
    }).then(function () {
      pending--;
      showProgress();
      showErrors();
      if (order[pos] === item) showState(item);
    });
  }

  function label(d) {
    var item = order[pos];
    if (!item) return;
    save(item, d);
    showState(item);
    go(1);  // at the last item: stays, and says it was the last one
  }

  function accept() { var item = order[pos]; if (item) label(item.digit); }

  // Keys work wherever focus is, except in form fields; Enter and Space keep their usual meaning on buttons
  // and links, and arrows and Space on the order menu.
  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || card.hidden || !order.length) return;
    var t = e.target, tag = t && t.tagName ? t.tagName : "";
    if (tag === "INPUT" || tag === "TEXTAREA" || (t && t.isContentEditable)) return;
    var k = e.key, onControl = tag === "BUTTON" || tag === "A" || tag === "SUMMARY";
    if (/^[0-9]$/.test(k)) {
      if (!e.repeat) label(Number(k));
    } else if (k === "Enter" || k === " ") {
      if (onControl || (tag === "SELECT" && k === " ")) return;
      if (!e.repeat) accept();
    } else if (k === "ArrowRight" || k === "ArrowLeft") {
      if (tag === "SELECT") return;
      go(k === "ArrowRight" ? 1 : -1);
    } else if (k === "Backspace") {
      go(-1);
    } else {
      return;
    }
    e.preventDefault();
  });

  // After a click or tap, focus goes back to the card so that Enter next accepts rather than re-pressing the button.
  function refocus(e) { if (e.detail > 0) card.focus({ preventScroll: true }); }

  pad.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-digit]");
    if (!b) return;
    label(Number(b.dataset.digit));
    refocus(e);
  });
  acceptBtn.addEventListener("click", function (e) { accept(); refocus(e); });
  prevBtn.addEventListener("click", function (e) { go(-1); refocus(e); });
  nextBtn.addEventListener("click", function (e) { go(1); refocus(e); });

  function useMode(m) {
    mode = MODES.indexOf(m) >= 0 ? m : "low";
    modeSel.value = mode;
    order = sorted(mode);
    pos = start(mode);
    show();
  }

  modeSel.addEventListener("change", function () {
    useMode(modeSel.value);
    var url = window.location.pathname + (mode === "low" ? "" : "?mode=" + mode);
    history.replaceState(null, "", url);
  });

  // All results, 1000 a page with probabilities, following `next`.
  function loadAll(total) {
    var got = [];
    function page(url) {
      return df.api(url).then(function (r) {
        Array.prototype.push.apply(got, r.body.items);
        if (r.body.next) progressEl.textContent = "Loading… " + got.length + " of " + total;
        return r.body.next ? page(r.body.next) : got;
      });
    }
    return page(base + "/results?limit=1000&include=probabilities");
  }

  function note(job, all) {
    var refused = 0, waiting = 0, parts = [];
    all.forEach(function (item) { if (item.status === "error") refused++; else if (item.status !== "done") waiting++; });
    if (refused) parts.push(refused === 1 ? "1 file could not be read and is left out." : refused + " files could not be read and are left out.");
    if (waiting) {
      parts.push(FINAL.indexOf(job.status) >= 0 ? waiting + " items have no result (the job was " + job.status + ")."
        : "The job is still running: " + waiting + " items are not done yet; reload the page to review them too.");
    }
    noteEl.textContent = parts.join(" ");
    noteEl.hidden = !parts.length;
  }

  var wanted = new URLSearchParams(window.location.search).get("mode");
  modeSel.value = MODES.indexOf(wanted) >= 0 ? wanted : "low";
  df.api(base).then(function (r) {
    var job = r.body;
    progressEl.textContent = "Loading…";
    return loadAll(job.total).then(function (all) { return { job: job, all: all }; });
  }).then(function (got) {
    reviewable = got.all.filter(function (item) { return item.status === "done"; });
    reviewable.forEach(function (item) { item._saved = item.label; });
    note(got.job, got.all);
    showProgress();
    if (!reviewable.length) { emptyEl.hidden = false; return; }
    card.hidden = false;
    useMode(modeSel.value);
    card.focus({ preventScroll: true });
  }).catch(function (err) {
    progressEl.textContent = "";
    loadError = df.friendly(err);
    showErrors();
  });
})();
