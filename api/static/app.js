/* priorscan radiographer page: sign in, open alerts of the person's trust, acknowledge/override, check a request.
 *
 * Plain JavaScript, no build step. Everything shown is built with textContent (never innerHTML), and links to
 * viewers are followed only when they are http(s) URLs. The page calls the same JSON API as any other client,
 * authenticated by the session cookie (HttpOnly, SameSite=Strict).
 */
"use strict";

(function () {
  /* Used until the server's list (the rule table's override reasons) has been read. */
  const DEFAULT_OVERRIDE_REASONS = [
    ["clinical-change", "Clinical change since the prior"],
    ["different-protocol", "Different protocol or contrast phase"],
    ["prior-unavailable", "Prior images unavailable or inadequate"],
    ["different-question", "Different clinical question"],
    ["other", "Other (explain in the comment)"],
  ].map(([code, display]) => ({ system: "urn:priorscan:override-reason", code, display }));
  const IDENTITY_TEXT = {
    confirmed: "Identity confirmed across trusts",
    probable: "Possible match only: check the patient's identity before relying on these priors",
    unknown: "Patient not found in the regional index",
  };
  const VERDICT_TEXT = {
    warning: ["Warning", "Comparable imaging within the warning window. Review it; record a reason if the new scan is still needed."],
    info: ["Information", "Related prior imaging exists. Review it before the scan."],
    clear: ["Clear", "No comparable recent imaging found in the region."],
  };
  const DATE_FORMAT = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", year: "numeric" });
  const TIME_FORMAT = new Intl.DateTimeFormat("en-GB", {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
  });

  const state = { me: null, trustNames: {}, overrideReasons: DEFAULT_OVERRIDE_REASONS };
  const $ = (id) => document.getElementById(id);

  /* --- small DOM helpers ------------------------------------------------------------------------------------ */

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
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

  function showError(id, message) {
    const box = $(id);
    box.textContent = message || "";
    box.hidden = !message;
  }

  function formatDate(text) {
    if (!text) return "date unknown";
    const date = new Date(text.length === 10 ? text + "T00:00:00" : text);
    return Number.isNaN(date.getTime()) ? text : DATE_FORMAT.format(date);
  }

  function formatDateTime(text) {
    if (!text) return "";
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? text : TIME_FORMAT.format(date);
  }

  // daysAgo counts from the request's own date (an order replayed from a feed may be days old), not from today.
  function daysAgoText(days) {
    if (days === null || days === undefined || days === "") return "";
    const n = Number(days);
    if (n <= 0) return "same day as the request";
    if (n === 1) return "1 day before the request";
    return `${n} days before the request`;
  }

  function trustLabel(ods) {
    if (!ods) return "trust unknown";
    const name = state.trustNames[ods];
    return name ? `${name} (${ods})` : ods;
  }

  function safeUrl(text) {
    try {
      const url = new URL(text, window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function lateralityText(value) {
    if (!value || value === "none") return "not applicable";
    return value;
  }

  /* --- API ------------------------------------------------------------------------------------------------ */

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

  /* --- sign-in ------------------------------------------------------------------------------------------- */

  function showSignIn(message) {
    state.me = null;
    $("who").hidden = true;
    $("workspace").hidden = true;
    $("signin").hidden = false;
    showError("signin-error", message || "");
    $("alert-list").replaceChildren();
  }

  function showWorkspace(me) {
    state.me = me;
    state.trustNames = {};
    for (const trust of me.trusts || []) state.trustNames[trust.ods] = trust.name;
    $("who-name").textContent = me.username;
    $("who-role").textContent = me.role || me.kind;
    $("who-trust").textContent = me.trust ? trustLabel(me.trust) : "all trusts";
    $("who").hidden = false;
    $("signin").hidden = true;
    $("workspace").hidden = false;
    $("alerts-title").textContent = me.trust ? `Open alerts at ${me.trustName || me.trust}` : "Open alerts";
    loadOverrideReasons();
    loadAlerts();
  }

  async function loadOverrideReasons() {
    try {
      const reasons = await api("/ui/override-reasons");
      if (Array.isArray(reasons) && reasons.length) state.overrideReasons = reasons;
    } catch (_) {
      /* keep the defaults */
    }
  }

  async function onSignIn(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const username = form.username.value.trim();
    const password = form.password.value;
    if (!username || !password) {
      showError("signin-error", "Enter your username and password.");
      (username ? form.password : form.username).focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    showError("signin-error", "");
    try {
      const me = await api("/ui/login", {
        method: "POST",
        body: new URLSearchParams({ username, password }),
      });
      form.password.value = "";
      showWorkspace(me);
      $("main").focus();
      announce(`Signed in as ${me.username}.`);
    } catch (error) {
      showError("signin-error", error.status === 401 ? "Wrong username or password." : error.message);
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

  /* --- priors ---------------------------------------------------------------------------------------------- */

  function severityTag(severity) {
    const value = severity === "warning" ? "warning" : "info";
    return el("span", { class: `tag tag-${value}`, text: value === "warning" ? "Warning" : "Info" });
  }

  function fact(term, value) {
    return el("div", {}, el("dt", { text: term }), el("dd", { text: value }));
  }

  function doseText(prior) {
    const dose = prior.effectiveDoseMsv;
    if (dose === null || dose === undefined || dose === "") return "not recorded";
    const n = Number(dose);
    return `≈ ${n < 0.1 ? n.toFixed(3) : n.toFixed(1)} mSv (estimate)`;
  }

  function renderPrior(prior) {
    const description = prior.description || [prior.modality, prior.bodySite].filter(Boolean).join(" ") || "Imaging study";
    const url = prior.viewerUrl ? safeUrl(prior.viewerUrl) : null;
    const action = url
      ? el("a", {
        class: "btn btn-view", href: url, target: "_blank", rel: "noopener noreferrer",
        "aria-label": `View images: ${description}, ${formatDate(prior.studyDate)} (opens in a new tab)`,
      }, "View images")
      : el("span", { class: "no-link", text: "No image link" });
    return el("li", { class: "prior" },
      el("p", { class: "prior-desc" }, description, " ", severityTag(prior.severity)),
      el("p", { class: "prior-when" },
        formatDate(prior.studyDate), " · ",
        el("span", { class: "prior-days", text: daysAgoText(prior.daysAgo) }), " · ",
        trustLabel(prior.trust)),
      el("dl", { class: "prior-facts" },
        fact("Modality", prior.modality || "unknown"),
        fact("Body site", prior.bodySite || "unknown"),
        fact("Laterality", lateralityText(prior.laterality)),
        fact("Effective dose", doseText(prior)),
        prior.rule ? fact("Rule", prior.rule) : null,
        prior.accessionNumber ? fact("Accession", prior.accessionNumber) : null),
      el("div", { class: "prior-action" }, action));
  }

  function renderPriors(priors, headingLevel) {
    const count = (priors || []).length;
    return [
      el(headingLevel, { class: "priors-title", text: count === 1 ? "1 comparable prior" : `${count} comparable priors` }),
      el("ul", { class: "priors" }, (priors || []).map(renderPrior)),
    ];
  }

  /* --- alerts ---------------------------------------------------------------------------------------------- */

  function requestTitle(request) {
    const r = request || {};
    const code = r.code || {};
    const parts = [code.display || [r.modality, r.bodySite].filter(Boolean).join(" ") || "Imaging request"];
    if (r.laterality && r.laterality !== "none") parts.push(r.laterality);
    return parts.join(" · ");
  }

  function identityLine(alert) {
    const identity = alert.identity || "unknown";
    const text = IDENTITY_TEXT[identity] || identity;
    const who = alert.regionalPatientId ? `Regional patient ${alert.regionalPatientId}. ` : "";
    return el("p", { class: `identity identity-${identity}` }, who, text, ".");
  }

  function overrideForm(alert, card, title) {
    const id = `ovr-${alert.id}`;
    const reasons = state.overrideReasons;
    const select = el("select", { id: `${id}-reason`, name: "reason", required: true },
      el("option", { value: "", text: "Choose a reason" }),
      reasons.map((r, i) => el("option", { value: String(i), text: r.display })));
    const comment = el("textarea", { id: `${id}-comment`, name: "comment", required: true, rows: 3 });
    const error = el("div", { class: "banner banner-error", role: "alert", hidden: true });
    const form = el("form", { class: "override", novalidate: true, "aria-label": `Override alert: ${title}` },
      el("fieldset", {},
        el("legend", { text: "Proceed with the new scan: record why" }),
        error,
        el("div", { class: "field" }, el("label", { for: select.id, text: "Reason" }), select),
        el("div", { class: "field" }, el("label", { for: comment.id, text: "Comment" }), comment)),
      el("div", { class: "alert-actions" },
        el("button", { type: "submit", class: "btn btn-warning", text: "Confirm override" }),
        el("button", {
          type: "button", class: "btn btn-secondary", text: "Cancel",
          onclick: () => { form.remove(); card.querySelector(".btn-override").focus(); },
        })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = select.value === "" ? null : reasons[Number(select.value)];
      if (!chosen) { error.textContent = "Choose a reason."; error.hidden = false; select.focus(); return; }
      if (!comment.value.trim()) { error.textContent = "Add a comment."; error.hidden = false; comment.focus(); return; }
      error.hidden = true;
      await actOnAlert(alert, card, "override", {
        reason: { system: chosen.system, code: chosen.code, display: chosen.display },
        comment: comment.value.trim(),
        user: state.me ? state.me.username : null,
      }, `Alert overridden: ${title}.`, error);
    });
    return form;
  }

  async function actOnAlert(alert, card, action, body, message, errorBox) {
    const buttons = card.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api(`/api/v1/alerts/${encodeURIComponent(alert.id)}/${action}`, { method: "POST", json: body });
      card.remove();
      if (!$("alert-list").children.length) $("alerts-empty").hidden = false;
      announce(message);
      $("alerts-title").focus();
    } catch (error) {
      buttons.forEach((b) => { b.disabled = false; });
      if (error.message !== "signed out") {
        errorBox.textContent = `Could not save: ${error.message}`;
        errorBox.hidden = false;
      }
    }
  }

  function renderAlert(alert) {
    const title = requestTitle(alert.request);
    const r = alert.request || {};
    const verdict = alert.verdict === "info" ? "info" : "warning";
    const headingId = `alert-${alert.id}-title`;
    const error = el("div", { class: "banner banner-error", role: "alert", hidden: true });
    const card = el("li", { class: `alert alert--${verdict}`, "aria-labelledby": headingId, "data-alert-id": alert.id });
    const meta = [
      r.priority ? `Priority ${r.priority}` : null,
      alert.placerOrderNumber || r.placerOrderNumber ? `Order ${alert.placerOrderNumber || r.placerOrderNumber}` : null,
      alert.requestingTrust ? `Requested at ${trustLabel(alert.requestingTrust)}` : null,
      alert.createdAt ? `Raised ${formatDateTime(alert.createdAt)}` : null,
    ].filter(Boolean).join(" · ");
    card.append(
      el("div", { class: "alert-head" },
        el("div", {},
          el("h2", { class: "alert-title", id: headingId }, severityTag(verdict), " ", title),
          el("p", { class: "alert-meta", text: meta }),
          r.reason ? el("p", { class: "alert-meta", text: `Indication: ${r.reason}` }) : null)),
      identityLine(alert),
      ...renderPriors(alert.priors, "h3"),
      error,
      el("div", { class: "alert-actions" },
        el("button", {
          type: "button", class: "btn btn-secondary", text: "Acknowledge",
          "aria-label": `Acknowledge alert: ${title}`,
          onclick: () => actOnAlert(alert, card, "acknowledge",
            { user: state.me ? state.me.username : null }, `Alert acknowledged: ${title}.`, error),
        }),
        el("button", {
          type: "button", class: "btn btn-warning btn-override", text: "Override",
          "aria-label": `Override alert: ${title}`,
          onclick: () => {
            const open = card.querySelector("form.override");
            if (open) { open.querySelector("select").focus(); return; }
            const form = overrideForm(alert, card, title);
            card.append(form);
            form.querySelector("select").focus();
          },
        })));
    return card;
  }

  async function loadAlerts() {
    if (!state.me) return;
    const list = $("alert-list");
    $("alerts-loading").hidden = false;
    $("alerts-empty").hidden = true;
    const query = new URLSearchParams({ status: "open" });
    if (state.me.trust) query.set("trust", state.me.trust);
    try {
      const body = await api(`/api/v1/alerts?${query}`);
      const alerts = (body && body.alerts) || [];
      list.replaceChildren(...alerts.map(renderAlert));
      $("alerts-empty").hidden = alerts.length > 0;
    } catch (error) {
      if (error.message !== "signed out") {
        list.replaceChildren(el("li", { class: "banner banner-error", role: "alert",
          text: error.status === 403 ? "Your account may not see alerts." : `Alerts could not be loaded: ${error.message}` }));
      }
    } finally {
      $("alerts-loading").hidden = true;
    }
  }

  /* --- check a request ------------------------------------------------------------------------------------- */

  function checkRequestBody(form) {
    const value = (name) => form.elements[name].value.trim();
    const nhs = value("nhs").replace(/[\s-]/g, "");
    const patient = {};
    if (nhs) patient.identifiers = [{ system: "https://fhir.nhs.uk/Id/nhs-number", value: nhs }];
    if (value("family") || value("given")) {
      patient.name = { family: value("family") || null, given: value("given") ? value("given").split(/\s+/) : [] };
    }
    if (value("birthDate")) patient.birthDate = value("birthDate");
    if (value("sex")) patient.sex = value("sex");
    const request = {
      modality: value("modality"),
      bodySite: value("bodySite"),
      priority: value("priority") || null,
      requestingTrust: state.me && state.me.trust ? state.me.trust : null,
    };
    if (value("laterality")) request.laterality = value("laterality");
    if (value("placerOrderNumber")) request.placerOrderNumber = value("placerOrderNumber");
    if (value("reason")) request.reason = value("reason");
    return { nhs, body: { patient, request } };
  }

  function renderCheckResult(result) {
    const verdict = VERDICT_TEXT[result.verdict] ? result.verdict : "clear";
    const [label, text] = VERDICT_TEXT[verdict];
    const nodes = [
      el("div", { class: `verdict verdict-${verdict}` },
        el("h3", {}, el("span", { class: `tag tag-${verdict}`, text: label }), " ", text),
        el("p", { class: `identity identity-${result.identity}` },
          result.regionalPatientId ? `Regional patient ${result.regionalPatientId}. ` : "",
          IDENTITY_TEXT[result.identity] || result.identity || "", "."),
        result.alertId ? el("p", { text: "An alert was raised for this request; it is in the list of open alerts." }) : null),
    ];
    if ((result.priors || []).length) nodes.push(...renderPriors(result.priors, "h3"));
    return nodes;
  }

  async function onCheck(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const { nhs, body } = checkRequestBody(form);
    const p = body.patient;
    let problem = "";
    if (nhs && !/^\d{10}$/.test(nhs)) problem = "An NHS number has 10 digits.";
    else if (!nhs && !(p.name && p.name.family && p.birthDate)) problem = "Give the NHS number, or family name and date of birth.";
    else if (!body.request.bodySite) problem = "Give the body site.";
    showError("check-error", problem);
    if (problem) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const out = $("check-result");
    out.replaceChildren(el("p", { class: "muted", text: "Checking…" }));
    try {
      const result = await api("/api/v1/duplicate-check", { method: "POST", json: body });
      out.replaceChildren(...renderCheckResult(result));
      if (result.alertId) loadAlerts();
    } catch (error) {
      out.replaceChildren();
      if (error.message !== "signed out") showError("check-error", `The check failed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  /* --- start ----------------------------------------------------------------------------------------------- */

  async function start() {
    $("signin-form").addEventListener("submit", onSignIn);
    $("signout-form").addEventListener("submit", onSignOut);
    $("refresh").addEventListener("click", () => { loadAlerts().then(() => announce("Alerts refreshed.")); });
    $("check-form").addEventListener("submit", onCheck);
    $("alerts-title").setAttribute("tabindex", "-1");
    const params = new URLSearchParams(window.location.search);
    const signinProblem = params.get("signin") === "failed" ? "Wrong username or password."
      : params.get("signin") === "locked" ? "Too many failed sign-ins. Wait 15 minutes or ask your administrator." : "";
    try {
      const response = await fetch("/ui/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) {
        showWorkspace(await response.json());
        return;
      }
    } catch (_) {
      /* fall through to the sign-in form */
    }
    showSignIn(signinProblem);
    $("username").focus();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
