/* priorscan workspace: the shell (sign-in, header, role-based menu, live channel, router) and its helpers.
 *
 * Plain JavaScript, no build step. Everything shown is built with textContent (never innerHTML); links to viewers
 * are followed only when they are http(s) URLs. JSON comes from the server with the session cookie (HttpOnly,
 * SameSite=Strict); each page is a script under /ui/static/pages/ that the shell loads when the person's role
 * opens it (the list comes with the session: GET /ui/session).
 *
 * Adding a page (see also api/workspace/pages.py):
 *   priorscan.registerPage({
 *     id: "identity-review",                  // the URL is /ui/#/identity-review[/more/path][?query]
 *     title: "Identity review",               // the document title and default heading
 *     render(container, params, shell) {      // params: {path: [...], query: URLSearchParams}
 *       container.append(shell.el("h1", {text: "Identity review", tabindex: "-1"}));
 *       shell.live.on("change", (data) => ...);   // live events (handlers are dropped when the page is left)
 *       return () => {};                      // optional clean-up when the person leaves the page
 *     },
 *   });
 * Helpers on `shell`: api(path, options), el(tag, attrs, ...children), announce(text), formatDate(yyyy-mm-dd),
 * formatDateTime(iso instant, in Europe/London with its zone), nhsNumber(text), trustLabel(ods), navigate(hash),
 * tag(kind, text), summaryList(rows), patientBanner(patient), dateInput(idPrefix, legend, yyyy-mm-dd), me, live.
 */
"use strict";

(function () {
  const TIME_ZONE = "Europe/London";
  const DATE_FORMAT = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
  const WEEKDAY_FORMAT = new Intl.DateTimeFormat("en-GB", { weekday: "long", timeZone: "UTC" });
  const TIME_FORMAT = new Intl.DateTimeFormat("en-GB", {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
    timeZone: TIME_ZONE, timeZoneName: "short",
  });
  const CLOCK_FORMAT = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", hour12: false, timeZone: TIME_ZONE, timeZoneName: "short",
  });

  const pages = {};
  const state = { me: null, trustNames: {}, current: null, cleanup: null, loaded: {}, source: null,
    liveHandlers: [], openAlerts: null, started: false };
  const $ = (id) => document.getElementById(id);

  /* --- helpers offered to pages ------------------------------------------------------------------------------ */

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function announce(message) {
    const status = $("status");
    status.textContent = "";
    // a fresh text node so that screen readers announce repeated messages too
    window.setTimeout(() => { status.textContent = message; }, 30);
  }

  function dateOnly(text) {
    if (!text) return null;
    const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(text);
    if (!match) return null;
    const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
    return Number.isNaN(date.getTime()) ? null : date;
  }

  /* A calendar date (YYYY-MM-DD) in UK format: "15 June 2026". Never shifted by the browser's zone. */
  function formatDate(text, withWeekday) {
    const date = dateOnly(text);
    if (!date) return text || "date not known";
    // "Monday 15 June 2026", as GOV.UK and NHS content write dates
    return withWeekday ? `${WEEKDAY_FORMAT.format(date)} ${DATE_FORMAT.format(date)}` : DATE_FORMAT.format(date);
  }

  /* An instant in UK time with its zone: "15 Jun 2026, 10:15 BST", whatever the browser's own zone. */
  function formatDateTime(text) {
    if (!text) return "";
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? text : TIME_FORMAT.format(date);
  }

  function formatTime(text) {
    if (!text) return "";
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? text : CLOCK_FORMAT.format(date);
  }

  function nhsNumber(text) {
    if (!text) return "Not known";
    const digits = String(text).replace(/\D/g, "");
    return digits.length === 10 ? `${digits.slice(0, 3)} ${digits.slice(3, 6)} ${digits.slice(6)}` : String(text);
  }

  function trustLabel(ods, name) {
    if (!ods) return "Trust not recorded";
    const known = name || state.trustNames[ods];
    return known ? `${known} (${ods})` : ods;
  }

  function safeUrl(text) {
    try {
      const url = new URL(text, window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  const TAGS = {
    warning: ["tag tag--red", "Warning"], info: ["tag tag--blue", "Info"], clear: ["tag tag--green", "Clear"],
    open: ["tag tag--orange", "To review"], acknowledged: ["tag tag--grey", "Acknowledged"],
    overridden: ["tag tag--purple", "Overridden"], cancelled: ["tag tag--grey", "Cancelled"],
    active: ["tag tag--white", "Waiting"], completed: ["tag tag--green", "Completed"],
    confirmed: ["tag tag--green", "Confirmed"], probable: ["tag tag--orange", "Possible match"],
    unknown: ["tag tag--grey", "Not in regional index"], provisional: ["tag tag--orange", "Provisional"],
    new: ["tag tag--yellow", "New"],
  };

  function tag(kind, text) {
    const [cls, label] = TAGS[kind] || ["tag tag--grey", kind || "unknown"];
    return el("strong", { class: cls, text: text || label });
  }

  /* The NHS summary list: rows of [key, value (node or text)]; rows with an empty value are left out. */
  function summaryList(rows, attrs) {
    return el("dl", Object.assign({ class: "summary-list" }, attrs || {}),
      rows.filter((r) => r && r[1] !== null && r[1] !== undefined && r[1] !== "").map(([key, value]) =>
        el("div", { class: "summary-list__row" },
          el("dt", { class: "summary-list__key", text: key }),
          el("dd", { class: "summary-list__value" }, value))));
  }

  /* The patient banner for positive identification: name, born, NHS number 3 3 4, sex, hospital number. */
  function patientBanner(patient, options) {
    const opts = options || {};
    if (!patient) {
      return el("section", { class: "banner banner--unknown", "aria-label": "Patient" },
        el("p", { class: "banner__name", text: "Patient not identified" }),
        el("p", { text: "The request's patient was not found in the regional index: no priors could be checked. "
          + "Identify the patient from your trust's own system." }));
    }
    const born = patient.birthDate
      ? `${formatDate(patient.birthDate)}${patient.age !== null && patient.age !== undefined ? ` (${patient.age} years)` : ""}`
      : "Not known";
    const item = (label, value, extra) => el("div", { class: "banner__item" },
      el("dt", { text: label }), el("dd", {}, value, extra || null));
    const nhs = el("span", { class: "banner__nhs", text: nhsNumber(patient.nhsNumber) });
    const unverified = patient.nhsNumber && !patient.nhsNumberVerified
      ? el("span", { class: "banner__flag", text: " (not verified)" }) : null;
    const banner = el("section", { class: "banner", "aria-label": `Patient: ${patient.name}` },
      el("p", { class: "banner__name" }, el("span", { class: "visually-hidden", text: "Patient name: " }), patient.name),
      el("dl", { class: "banner__details" },
        item("Born", born),
        item("NHS number", nhs, unverified),
        item("Sex", patient.sex || "Not known"),
        patient.hospitalNumber ? item(`Hospital number (${patient.hospitalNumberTrust})`, patient.hospitalNumber) : null));
    const nodes = [banner];
    if (patient.identityDoubt) {
      nodes.push(el("div", { class: "callout callout--warning", role: "note", "aria-label": "Identity doubt" },
        el("h2", { class: "callout__title" }, el("span", { class: "visually-hidden", text: "Important: " }),
          "Identity not confirmed"),
        el("p", { text: patient.identityDoubt }),
        el("p", { text: "Check the patient's name, date of birth and NHS number with them before relying on these priors." })));
    }
    if (opts.regional !== false) nodes.push(regionalIdentity(patient, opts.headingLevel || "h2"));
    return el("div", { class: "patient" }, nodes);
  }

  function regionalIdentity(patient, headingLevel) {
    const records = patient.records || [];
    const state = (r) => r.provisional ? tag("provisional")
      : r.linkState === "possible-match" ? tag("probable", "Possible match, awaiting review")
        : tag("confirmed", "Linked");
    return el("section", { class: "regional", "aria-labelledby": "regional-title" },
      el(headingLevel, { id: "regional-title", class: "heading-s", text: "Known at these trusts" }),
      records.length
        ? el("table", { class: "table table--compact" },
          el("caption", { class: "visually-hidden", text: "The patient's records at each trust" }),
          el("thead", {}, el("tr", {}, ["Trust", "Hospital number", "NHS number", "Link"].map((h) =>
            el("th", { scope: "col", text: h })))),
          el("tbody", {}, records.map((r) => el("tr", {},
            el("td", { "data-label": "Trust", text: trustLabel(r.trust, r.trustName) }),
            el("td", { "data-label": "Hospital number", text: r.hospitalNumber || "" }),
            el("td", { "data-label": "NHS number",
              text: r.nhsNumber ? `${r.nhsNumber}${r.nhsNumberVerified ? "" : " (not verified)"}` : "Not known" }),
            el("td", { "data-label": "Link" }, state(r))))))
        : el("p", { class: "hint", text: "No trust records." }),
      el("p", { class: "hint", text: `Regional patient ${patient.regionalPatientId}` }));
  }

  /* The NHS date input: day, month and year in their own fields (never the browser's own date format). */
  function dateInput(prefix, legend, value, hint) {
    const date = dateOnly(value);
    const part = (name, label, width, initial) => el("div", { class: "date-input__item" },
      el("label", { for: `${prefix}-${name}`, class: "date-input__label", text: label }),
      el("input", { id: `${prefix}-${name}`, name: `${prefix}-${name}`, class: `input input--width-${width}`,
        inputmode: "numeric", autocomplete: "off", value: initial, "aria-describedby": hint ? `${prefix}-hint` : null }));
    return el("fieldset", { class: "fieldset date-input", role: "group", "aria-describedby": hint ? `${prefix}-hint` : null },
      el("legend", { class: "fieldset__legend", text: legend }),
      hint ? el("p", { id: `${prefix}-hint`, class: "hint", text: hint }) : null,
      el("div", { class: "date-input__row" },
        part("day", "Day", 2, date ? String(date.getUTCDate()) : ""),
        part("month", "Month", 2, date ? String(date.getUTCMonth() + 1) : ""),
        part("year", "Year", 4, date ? String(date.getUTCFullYear()) : "")));
  }

  /* The date a date input holds, as YYYY-MM-DD, or null when it is not a real date. */
  function readDateInput(root, prefix) {
    const value = (name) => (root.querySelector(`#${prefix}-${name}`).value || "").trim();
    const [d, m, y] = [value("day"), value("month"), value("year")];
    if (!/^\d{1,2}$/.test(d) || !/^\d{1,2}$/.test(m) || !/^\d{4}$/.test(y)) return null;
    const date = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
    if (date.getUTCFullYear() !== Number(y) || date.getUTCMonth() !== Number(m) - 1 || date.getUTCDate() !== Number(d)) return null;
    return `${y}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
  }

  function addDays(text, days) {
    const date = dateOnly(text);
    if (!date) return text;
    date.setUTCDate(date.getUTCDate() + days);
    return date.toISOString().slice(0, 10);
  }

  /* --- JSON with the session cookie ---------------------------------------------------------------------------- */

  async function api(path, options) {
    const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    init.headers = Object.assign({ Accept: "application/json" }, init.headers);
    if (init.json !== undefined) {
      init.body = JSON.stringify(init.json);
      init.headers["Content-Type"] = "application/json";
      delete init.json;
    }
    const response = await fetch(path, init);
    let body = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) {
      try { body = await response.json(); } catch (_) { body = null; }
    }
    if (response.status === 401 && path !== "/ui/login") {
      showSignIn("Your session has ended. Please sign in again.");
      throw new Error("signed out");
    }
    if (!response.ok) {
      const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : "the request was refused") : "";
      const error = new Error(detail || `The server answered ${response.status}.`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  /* --- the live channel: server-sent events read from the database by the server --------------------------------- */

  const live = {
    on(event, handler) { state.liveHandlers.push([event, handler]); },
    get openAlerts() { return state.openAlerts; },
  };

  function setLive(text, ok) {
    if ($("live-text").textContent !== text) $("live-text").textContent = text;
    $("live-dot").className = ok ? "live-dot live-dot--on" : "live-dot";
  }

  function setCount(count) {
    if (typeof count !== "number" || count < 0) return;
    state.openAlerts = count;
    const badge = document.getElementById("menu-count-worklist");
    if (badge) {
      badge.textContent = String(count);
      badge.hidden = false;
      badge.parentElement.setAttribute("aria-label", `Worklist, ${count} ${count === 1 ? "alert" : "alerts"} to review`);
    }
  }

  function dispatch(event, data) {
    for (const [name, handler] of state.liveHandlers.slice()) {
      if (name === event) {
        try { handler(data); } catch (error) { console.warn("live handler failed", error); }
      }
    }
  }

  function startLive() {
    stopLive();
    if (!state.me || !state.me.live) {
      setLive("Live updates off for your role", false);
      return;
    }
    const source = new EventSource("/api/v1/workspace/events");
    state.source = source;
    source.addEventListener("open", () => {
      window.clearTimeout(state.liveTimer);
      state.liveTimer = null;
      setLive("Live updates on", true);
    });
    source.addEventListener("hello", (event) => {
      const data = JSON.parse(event.data);
      setCount(data.openAlerts);
      setLive("Live updates on", true);
      dispatch("hello", data);
    });
    source.addEventListener("change", (event) => {
      const data = JSON.parse(event.data);
      setCount(data.openAlerts);
      dispatch("change", data);
    });
    source.addEventListener("error", async () => {
      if (source.readyState === EventSource.CLOSED) {
        setLive("Live updates stopped: reload the page", false);
        try {
          const response = await fetch("/ui/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
          if (response.status === 401) showSignIn("Your session has ended. Please sign in again.");
        } catch (_) { /* offline: the message above stays */ }
      } else if (!state.liveTimer) {
        // a stream ends every few seconds by design and reopens at once: say so only if it stays closed
        state.liveTimer = window.setTimeout(() => {
          state.liveTimer = null;
          if (source.readyState !== EventSource.OPEN) setLive("Live updates paused: reconnecting", false);
        }, 5000);
      }
    });
  }

  function stopLive() {
    if (state.source) state.source.close();
    state.source = null;
  }

  /* --- pages and the router -------------------------------------------------------------------------------------- */

  function registerPage(page) {
    pages[page.id] = page;
    if (state.started && state.current === page.id) route();
  }

  function parseHash() {
    const raw = window.location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { id: parts[0] || "", path: parts.slice(1), query: new URLSearchParams(query || "") };
  }

  function navigate(hash) {
    if (window.location.hash === hash) route();
    else window.location.hash = hash;
  }

  function loadScript(page) {
    if (state.loaded[page.script]) return state.loaded[page.script];
    state.loaded[page.script] = new Promise((resolve, reject) => {
      const script = el("script", { src: `/ui/static/pages/${page.script}` });
      script.addEventListener("load", resolve);
      script.addEventListener("error", reject);
      document.head.append(script);
    });
    return state.loaded[page.script];
  }

  function drawMenu(me) {
    const list = $("menu-list");
    list.replaceChildren(...(me.pages || []).filter((p) => p.menu).map((p) => el("li", { class: "menu__item" },
      el("a", { class: "menu__link", href: `#/${p.id}`, "data-page": p.id },
        p.title,
        p.id === "worklist" ? el("span", { id: "menu-count-worklist", class: "count", hidden: true, "aria-hidden": "true" }) : null))));
    $("menu").hidden = false;
  }

  function markMenu(id) {
    for (const link of document.querySelectorAll(".menu__link")) {
      const here = link.dataset.page === id || (id === "request" && link.dataset.page === "worklist");
      if (here) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  async function route() {
    if (!state.me) return;
    // Only the latest call renders: a page's script registering itself calls route() again while an
    // earlier call still waits for that script, and two renders would leave two sets of listeners.
    const generation = (state.routeGeneration = (state.routeGeneration || 0) + 1);
    const superseded = () => generation !== state.routeGeneration;
    const { id, path, query } = parseHash();
    const allowed = state.me.pages || [];
    const fallback = allowed.find((p) => p.menu);
    const page = allowed.find((p) => p.id === id);
    if (!page) {
      if (fallback && id !== fallback.id) { window.location.replace(`#/${fallback.id}`); return; }
      showPage(null);
      $("page").replaceChildren(el("h1", { tabindex: "-1", text: "Nothing to show" }),
        el("p", { text: "Your role has no pages in the workspace. Ask your PACS/RIS administrator if this is wrong." }));
      return;
    }
    if (typeof state.cleanup === "function") { try { state.cleanup(); } catch (_) { /* ignore */ } }
    state.cleanup = null;
    state.liveHandlers = [];
    if (state.current && state.current !== page.id) $("status").textContent = "";
    state.current = page.id;
    markMenu(page.id);
    try {
      await loadScript(page);
    } catch (_) {
      $("page").replaceChildren(el("p", { class: "callout callout--error", role: "alert", text: "This page could not be loaded." }));
      return;
    }
    if (superseded()) return;
    const module = pages[page.id];
    if (!module) return; // registers itself and calls route() again
    showPage(page);
    document.title = `${module.title || page.title} · priorscan`;
    const container = el("div", { class: "page__body" });
    $("page").replaceChildren(container);
    const cleanup = await module.render(container, { path, query }, shell);
    if (superseded()) {
      if (typeof cleanup === "function") { try { cleanup(); } catch (_) { /* ignore */ } }
      return;
    }
    state.cleanup = cleanup;
    const heading = container.querySelector("h1");
    if (heading && state.focusOnRoute) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
    state.focusOnRoute = true;
  }

  function showPage(page) {
    $("signin").hidden = true;
    $("page").hidden = false;
    if (!page) markMenu("");
  }

  /* --- sign-in -------------------------------------------------------------------------------------------------- */

  function showSignIn(message) {
    state.me = null;
    stopLive();
    $("who").hidden = true;
    $("menu").hidden = true;
    $("page").hidden = true;
    $("page").replaceChildren();
    $("signin").hidden = false;
    const box = $("signin-error");
    box.textContent = message || "";
    box.hidden = !message;
    document.title = "Sign in · priorscan";
  }

  function enter(me) {
    state.me = me;
    shell.me = me;
    state.trustNames = {};
    for (const trust of me.trusts || []) state.trustNames[trust.ods] = trust.name;
    $("who-name").textContent = me.username;
    $("who-role").textContent = me.role || me.kind;
    $("who-trust").textContent = me.trust ? trustLabel(me.trust, me.trustName) : "all trusts";
    $("who").hidden = false;
    drawMenu(me);
    startLive();
    state.started = true;
    route();
  }

  async function onSignIn(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const username = form.username.value.trim();
    const password = form.password.value;
    const box = $("signin-error");
    if (!username || !password) {
      box.textContent = "Enter your username and password.";
      box.hidden = false;
      (username ? form.password : form.username).focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    box.hidden = true;
    try {
      const me = await api("/ui/login", { method: "POST", body: new URLSearchParams({ username, password }) });
      form.password.value = "";
      state.focusOnRoute = true;
      enter(me);
      announce(`Signed in as ${me.username}.`);
    } catch (error) {
      box.textContent = error.status === 401 ? "Wrong username or password." : error.message;
      box.hidden = false;
      form.password.value = "";
      form.password.focus();
    } finally {
      button.disabled = false;
    }
  }

  async function onSignOut(event) {
    event.preventDefault();
    try {
      await fetch("/ui/logout", { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } });
    } finally {
      showSignIn("");
      announce("Signed out.");
      $("username").focus();
    }
  }

  const shell = {
    api, el, announce, formatDate, formatDateTime, formatTime, nhsNumber, trustLabel, safeUrl, navigate, tag,
    summaryList, patientBanner, regionalIdentity, dateInput, readDateInput, addDays, live, me: null,
    get today() { return state.me && state.me.today; },
  };
  window.priorscan = { registerPage, shell };

  async function start() {
    $("signin-form").addEventListener("submit", onSignIn);
    $("signout-form").addEventListener("submit", onSignOut);
    window.addEventListener("hashchange", () => { state.focusOnRoute = true; route(); });
    const params = new URLSearchParams(window.location.search);
    const problem = params.get("signin") === "failed" ? "Wrong username or password."
      : params.get("signin") === "locked" ? "Too many failed sign-ins. Wait 15 minutes or ask your administrator." : "";
    try {
      const response = await fetch("/ui/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) {
        enter(await response.json());
        return;
      }
    } catch (_) {
      /* fall through to the sign-in form */
    }
    showSignIn(problem);
    $("username").focus();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
