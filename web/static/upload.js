// Upload page and shareable job page: XHR upload with progress, job polling, sortable results table.
"use strict";
(function () {
  var main = document.getElementById("main");
  var form = document.getElementById("upload-form");
  var input = document.getElementById("files");
  var drop = document.getElementById("dropzone");
  var chosen = document.getElementById("chosen");
  var submit = document.getElementById("submit");
  var upBar = document.getElementById("upload-progress");
  var upText = document.getElementById("upload-text");
  var upError = document.getElementById("upload-error");
  var jobSection = document.getElementById("job");
  var statusEl = document.getElementById("job-status");
  var jobText = document.getElementById("job-text");
  var bar = document.getElementById("job-progress");
  var cancelBtn = document.getElementById("cancel");
  var csvLink = document.getElementById("csv-link");
  var shareLink = document.getElementById("share-link");
  var reviewLink = document.getElementById("review-link");
  var jobError = document.getElementById("job-error");
  var onlyErrors = document.getElementById("only-errors");
  var onlyLow = document.getElementById("only-low");
  var shownEl = document.getElementById("shown");
  var table = document.getElementById("results");
  var tbody = table.tBodies[0];
  var LOW = 0.8;
  var FINAL = ["succeeded", "failed", "cancelled"];

  var job = null;          // the job on screen
  var items = [];          // index -> result item
  var rows = [];           // index -> <tr>
  var sortKey = "index", sortDir = 1;
  var lastResults = 0, fetching = false, resultsSeq = 0;

  function size(n) {
    return n < 1024 * 1024 ? Math.max(1, Math.round(n / 1024)) + " KB" : (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function describeChoice() {
    var files = input.files, total = 0;
    for (var i = 0; i < files.length; i++) total += files[i].size;
    chosen.textContent = files.length === 0 ? "" : files.length === 1 ? files[0].name + " (" + size(total) + ")"
      : files.length + " files (" + size(total) + ")";
  }
  input.addEventListener("change", describeChoice);

  ["dragenter", "dragover"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    input.files = e.dataTransfer.files;
    describeChoice();
  });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    df.show(upError, "");
    if (!input.files.length) { df.show(upError, "Choose a ZIP or some images first."); input.focus(); return; }
    var data = new FormData();
    for (var i = 0; i < input.files.length; i++) data.append("file", input.files[i], input.files[i].name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/jobs");
    xhr.withCredentials = true;
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (ev) {
      if (!ev.lengthComputable) return;
      upBar.max = ev.total; upBar.value = ev.loaded;
      upText.textContent = "Uploading… " + Math.round(100 * ev.loaded / ev.total) + "%";
    });
    xhr.addEventListener("load", function () {
      submit.disabled = false;
      try {
        var created = df.parse(xhr.status, xhr.responseText);
        upBar.value = upBar.max;
        upText.textContent = "Uploaded.";
        history.pushState({ job: created.id }, "", "/jobs/" + encodeURIComponent(created.id));
        showJob(created);
      } catch (err) {
        upBar.hidden = true; upText.textContent = "";
        df.show(upError, df.friendly(err));
      }
    });
    xhr.addEventListener("error", function () {
      submit.disabled = false; upBar.hidden = true; upText.textContent = "";
      df.show(upError, "The upload failed (connection closed). The file may be too large, or the service is down.");
    });
    submit.disabled = true;
    upBar.hidden = false; upBar.max = 100; upBar.value = 0;
    upText.textContent = "Uploading… 0%";
    xhr.send(data);
  });

  window.addEventListener("popstate", function () { window.location.reload(); });

  // ---- the job ----
  function showJob(j) {
    job = j; items = []; rows = []; lastResults = 0;
    tbody.textContent = "";
    df.show(jobError, "");
    var base = "/api/v1/jobs/" + encodeURIComponent(j.id);
    document.getElementById("job-id").textContent = j.id;
    csvLink.href = base + "/results.csv";
    shareLink.href = "/jobs/" + encodeURIComponent(j.id);
    reviewLink.href = "/jobs/" + encodeURIComponent(j.id) + "/review";
    jobSection.hidden = false;
    document.title = "Job " + j.id.slice(0, 8) + " · digitflow";
    update(j);
    // A small job can be over before the upload is even answered: then there is nothing to poll for,
    // only the results to read.
    if (FINAL.indexOf(j.status) >= 0) loadResults(j.id, true);
    else setTimeout(function () { poll(j.id, 0); }, 300);
  }

  function update(j) {
    job = j;
    statusEl.textContent = j.status;
    var total = j.total || 0, done = Math.min(j.done || 0, total);
    bar.max = Math.max(total, 1);
    bar.value = total ? done : (FINAL.indexOf(j.status) >= 0 ? 1 : 0);
    jobText.textContent = "— " + done + " of " + total + " images" + (j.failed ? ", " + j.failed + " with errors" : "");
    cancelBtn.hidden = FINAL.indexOf(j.status) >= 0;
    reviewLink.hidden = !(done - (j.failed || 0) > 0);  // once some result has a prediction to review
  }

  // Milliseconds before retry number failures + 1 of a failed read: 0.5 s doubling, at most 10 s.
  function backoff(failures) { return Math.min(10000, 500 * Math.pow(2, failures)); }

  function poll(id, failures) {
    if (!job || job.id !== id) return;
    df.api("/api/v1/jobs/" + encodeURIComponent(id)).then(function (r) {
      if (!job || job.id !== id) return;
      df.show(jobError, "");
      update(r.body);
      var final = FINAL.indexOf(r.body.status) >= 0;
      if (final || Date.now() - lastResults > 2000) loadResults(id, final);
      if (!final) setTimeout(function () { poll(id, 0); }, r.body.total > 5000 ? 1000 : 400);
    }).catch(function (err) {
      if (!job || job.id !== id) return;
      df.show(jobError, df.friendly(err));
      if (err instanceof df.ApiFailure && err.status === 404) { statusEl.textContent = "not found"; cancelBtn.hidden = true; return; }
      setTimeout(function () { poll(id, failures + 1); }, backoff(failures));
    });
  }

  // All pages of results (1000 a page); `force` for the final read after the job ended, which is retried
  // with backoff when it fails (a dropped connection must not leave a finished job with an empty table).
  function loadResults(id, force, failures) {
    failures = failures || 0;
    if (fetching && !force) return;
    fetching = true;
    lastResults = Date.now();
    var seq = ++resultsSeq, got = [];
    function page(url) {
      return df.api(url).then(function (r) {
        got = got.concat(r.body.items);
        return r.body.next ? page(r.body.next) : got;
      });
    }
    page("/api/v1/jobs/" + encodeURIComponent(id) + "/results?limit=1000").then(function (all) {
      if (!(job && job.id === id && seq === resultsSeq)) return;  // an older read never wins
      if (failures) df.show(jobError, "");
      applyItems(all);
    }).catch(function (err) {
      if (!(job && job.id === id)) return;
      df.show(jobError, df.friendly(err));
      if (force && seq === resultsSeq) {
        setTimeout(function () { loadResults(id, true, failures + 1); }, backoff(failures));
      }
    }).then(function () { fetching = false; });
  }

  function cell(tr, cls) { var td = document.createElement("td"); if (cls) td.className = cls; tr.appendChild(td); return td; }

  function makeRow(item) {
    var tr = document.createElement("tr");
    cell(tr, "idx").textContent = String(item.index);
    cell(tr, "thumb");
    cell(tr, "file").textContent = item.filename;
    cell(tr, "digit");
    cell(tr, "conf");
    cell(tr, "status");
    tr._status = null;
    return tr;
  }

  function fillRow(tr, item) {
    if (tr._status === item.status) return;
    tr._status = item.status;
    var c = tr.cells;
    if (item.status === "done") {
      var img = document.createElement("img");
      img.loading = "lazy"; img.decoding = "async"; img.width = 28; img.height = 28;
      img.alt = "digit " + item.index;
      img.src = "/api/v1/jobs/" + encodeURIComponent(job.id) + "/results/" + item.index + ".png";
      c[1].textContent = ""; c[1].appendChild(img);
    }
    c[3].textContent = item.digit == null ? "" : String(item.digit);
    c[4].textContent = item.confidence == null ? "" : df.pct(item.confidence);
    c[5].textContent = item.error ? "error: " + item.error.message : item.status;
    var low = item.status === "done" && item.confidence < LOW;
    tr.classList.toggle("low", low);
    tr.classList.toggle("err", item.status === "error");
    if (low) c[4].title = "Low confidence (below " + LOW * 100 + "%)";
  }

  function applyItems(list) {
    list.forEach(function (item) {
      items[item.index] = item;
      if (!rows[item.index]) rows[item.index] = makeRow(item);
      fillRow(rows[item.index], item);
    });
    render();
  }

  function value(item, key) {
    var v = item[key];
    if (key === "status" && item.error) v = "error: " + item.error.code;
    return v;
  }

  function render() {
    var order = items.filter(Boolean).slice();
    order.sort(function (a, b) {
      var x = value(a, sortKey), y = value(b, sortKey);
      if (x == null && y == null) return a.index - b.index;
      if (x == null) return 1;   // empty cells last either way
      if (y == null) return -1;
      var c = typeof x === "string" ? x.localeCompare(y, undefined, { numeric: true }) : x - y;
      return c * sortDir || a.index - b.index;
    });
    var frag = document.createDocumentFragment(), shown = 0;
    order.forEach(function (item) {
      var tr = rows[item.index];
      var low = item.status === "done" && item.confidence < LOW;
      tr.hidden = (onlyErrors.checked && item.status !== "error") || (onlyLow.checked && !low);
      if (!tr.hidden) shown++;
      frag.appendChild(tr);
    });
    tbody.appendChild(frag);
    var filtered = onlyErrors.checked || onlyLow.checked;
    shownEl.textContent = filtered ? "Showing " + shown + " of " + order.length : "";
  }

  table.tHead.addEventListener("click", function (e) {
    var btn = e.target.closest("button[data-key]");
    if (!btn) return;
    var key = btn.dataset.key;
    sortDir = key === sortKey ? -sortDir : 1;
    sortKey = key;
    table.tHead.querySelectorAll("th").forEach(function (th) { th.removeAttribute("aria-sort"); });
    btn.parentNode.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    render();
  });
  onlyErrors.addEventListener("change", render);
  onlyLow.addEventListener("change", render);

  cancelBtn.addEventListener("click", function () {
    if (!job) return;
    cancelBtn.disabled = true;
    df.api("/api/v1/jobs/" + encodeURIComponent(job.id), { method: "DELETE" }).then(function (r) {
      if (r.body) update(r.body);
      loadResults(job.id, true);
    }).catch(function (err) {
      df.show(jobError, df.friendly(err));
    }).then(function () { cancelBtn.disabled = false; });
  });

  // /jobs/<id>: show that job straight away.
  var initial = main.dataset.jobId;
  if (initial) {
    document.getElementById("job-id").textContent = initial;
    jobSection.hidden = false;
    df.api("/api/v1/jobs/" + encodeURIComponent(initial)).then(function (r) {
      showJob(r.body);
    }).catch(function (err) {
      statusEl.textContent = err instanceof df.ApiFailure && err.status === 404 ? "not found" : "unknown";
      df.show(jobError, df.friendly(err));
      csvLink.hidden = true; shareLink.hidden = true; reviewLink.hidden = true;
    });
  }
})();
