// Shared helpers for the pages: same-origin JSON calls with friendly errors.
"use strict";
window.df = (function () {
  var MESSAGES = {
    no_digit_found: "I couldn't find a digit there. Try drawing a bit bigger or bolder.",
    rate_limited: "Too many requests right now. Please wait a moment and try again.",
    unavailable: "The service is busy or starting up. Please try again in a moment.",
    payload_too_large: "That upload is too large for the server.",
    unsupported_media_type: "That file type isn't supported. Use a ZIP, or PNG, JPEG, GIF, BMP, TIFF or WebP images.",
    invalid_archive: "That ZIP file can't be read.",
    no_images: "No images were found in that upload.",
    not_found: "Not found: the job may have expired or been deleted.",
    unauthorized: "Your session has expired; please sign in again."
  };

  function ApiFailure(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }

  function friendly(err) {
    if (err instanceof ApiFailure) {
      return MESSAGES[err.code] || (err.message ? err.message.charAt(0).toUpperCase() + err.message.slice(1) : "Something went wrong (" + err.status + ").");
    }
    return "Can't reach the service. Check your connection and try again.";
  }

  function toLogin() {
    window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname);
  }

  // Parse an API answer: JSON body or an ApiFailure.
  function parse(status, text) {
    var body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (status >= 200 && status < 300) return body;
    if (status === 401) toLogin();
    var e = body && body.error ? body.error : {};
    throw new ApiFailure(status, e.code || "http_" + status, e.message || "");
  }

  function api(path, options) {
    var opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers);
    return fetch(path, opts).then(function (resp) {
      return resp.text().then(function (text) { return { status: resp.status, body: parse(resp.status, text) }; });
    });
  }

  // One decimal; a probability short of 1 never reads as 100.0%.
  function pct(p) { return Math.min(p * 100, p < 1 ? 99.9 : 100).toFixed(1) + "%"; }

  function show(el, text) { el.textContent = text || ""; el.hidden = !text; }

  return { api: api, parse: parse, friendly: friendly, pct: pct, show: show, ApiFailure: ApiFailure };
})();
