/* DataSaaS tracker: pageviews (SPA included) and goals, POSTed as JSON to data-api (default:
 * this script's origin + /api/events). Goals: window.datasaas("signup", {plan: "pro"}); calls
 * queued before load with the usual `window.datasaas.q` stub are replayed. */
(function () {
  "use strict";
  var w = window, d = document, loc = location, nav = navigator;
  if (w.datasaas && w.datasaas.visitorId) return; // loaded twice

  var el = d.currentScript || d.querySelector("script[data-website-id]");
  var websiteId = el && el.getAttribute("data-website-id");
  if (!websiteId) return;
  var api = new URL(el.getAttribute("data-api") ||
    new URL(el.src || loc.href, loc.href).origin + "/api/events", loc.href).href;
  // A cross-origin beacon cannot carry application/json (no preflight): same-origin only.
  var beaconOk = new URL(api).origin === loc.origin && nav.sendBeacon;

  // Storage throws in some privacy modes and sandboxes; memory keeps ids stable for the page.
  var mem = {};
  function get(area, key) {
    try { return mem[key] || w[area].getItem(key); } catch (e) { return null; }
  }
  function set(area, key, value) {
    mem[key] = value;
    try { w[area].setItem(key, value); } catch (e) { /* memory only */ }
  }
  function uuid() {
    var c = w.crypto; // randomUUID exists only in secure contexts
    if (c && c.randomUUID) return c.randomUUID();
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (x) {
      return (x ^ ((Math.random() * 16) >> (x / 4))).toString(16);
    });
  }

  var visitorId = get("localStorage", "datasaas_vid");
  if (!visitorId) set("localStorage", "datasaas_vid", (visitorId = uuid()));

  function sessionId() {
    var now = Date.now(), id = get("sessionStorage", "datasaas_sid");
    if (!id || now - (+get("sessionStorage", "datasaas_sid_t") || 0) > 18e5) { // 30 min idle
      set("sessionStorage", "datasaas_sid", (id = uuid()));
    }
    set("sessionStorage", "datasaas_sid_t", String(now));
    return id;
  }

  function send(type, extra) {
    var q = new URLSearchParams(loc.search);
    var body = Object.assign({
      website_id: websiteId, visitor_id: visitorId, session_id: sessionId(), event_type: type,
      url: loc.href, hostname: loc.hostname, pathname: loc.pathname, title: d.title,
      utm_source: q.get("utm_source"), utm_medium: q.get("utm_medium"),
      utm_campaign: q.get("utm_campaign"), screen_width: w.screen && w.screen.width,
      language: nav.language
    }, extra);
    for (var k in body) if (body[k] == null || body[k] === "") delete body[k];
    var data = JSON.stringify(body);
    if (w.fetch) {
      return fetch(api, {
        method: "POST", body: data, headers: { "Content-Type": "application/json" },
        keepalive: true, mode: "cors"
      }).catch(function () { /* never break the page */ });
    }
    if (beaconOk) nav.sendBeacon(api, new Blob([data], { type: "application/json" }));
    return Promise.resolve();
  }

  var lastUrl, first = true;
  function pageview() {
    if (loc.href === lastUrl) return Promise.resolve();
    lastUrl = loc.href;
    var extra = first ? { referrer: d.referrer } : {};
    first = false;
    return send("pageview", extra);
  }

  function datasaas(goalName, metadata) {
    if (goalName) send("goal", { goal_name: String(goalName), metadata: metadata });
  }
  var queued = (w.datasaas && w.datasaas.q) || [];
  datasaas.visitorId = visitorId;
  w.datasaas = datasaas;

  var push = history.pushState;
  history.pushState = function () {
    var result = push.apply(this, arguments);
    pageview();
    return result;
  };
  w.addEventListener("popstate", pageview);

  // Queued goals go after the first pageview so that the visitor's first touch lands first.
  function replay() {
    for (var i = 0; i < queued.length; i++) datasaas.apply(null, queued[i]);
  }
  pageview().then(replay, replay);
})();
