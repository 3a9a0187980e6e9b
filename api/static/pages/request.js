/* The request view: patient banner, regional identity, the requested procedure, each comparable prior with one click
 * to its images, and the actions (acknowledge, override with a coded reason, cancel as a duplicate). */
"use strict";

(function () {
  const VERDICT_TEXT = {
    warning: "Comparable imaging within the warning window. Look at it before the patient is exposed; if the new "
      + "scan is still needed, record why (the IR(ME)R justification).",
    info: "Related prior imaging exists. Look at it before the scan.",
    clear: "No comparable recent imaging was found in the region when the request was checked.",
  };
  let reasonsCache = null;

  function daysText(days) {
    if (days === null || days === undefined || days === "") return "";
    const n = Number(days);
    if (n <= 0) return "same day as the request";
    return n === 1 ? "1 day before the request" : `${n} days before the request`;
  }

  function doseText(value) {
    if (value === null || value === undefined || value === "") return "Not recorded";
    const n = Number(value);
    return `≈ ${n < 0.1 ? n.toFixed(3) : n.toFixed(1)} mSv (estimate)`;
  }

  window.priorscan.registerPage({
    id: "request",
    title: "Request",
    async render(container, params, shell) {
      const el = shell.el;
      const id = params.path[0] || "";
      container.append(el("p", { class: "muted", text: "Loading the request…" }));
      let view;
      try {
        view = await shell.api(`/api/v1/workspace/requests/${encodeURIComponent(id)}`);
      } catch (error) {
        if (error.message === "signed out") return null;
        container.replaceChildren(
          el("a", { href: "#/worklist", class: "back-link", text: "Back to the worklist" }),
          el("h1", { tabindex: "-1", text: "Request not found" }),
          el("p", { text: error.status === 404 ? "There is no such request at your trust." : `It could not be loaded: ${error.message}` }));
        return null;
      }
      if (!reasonsCache) {
        try { reasonsCache = await shell.api("/ui/override-reasons"); } catch (_) { reasonsCache = []; }
      }
      draw(container, view, shell, id);
      shell.live.on("change", (data) => {
        // a change made elsewhere (another radiographer, the order cancelled by its system), not this page's own
        const shown = container.dataset;
        const elsewhere = (data.changes || []).some((c) =>
          (c.event === "alert" && c.alertId === shown.alertId && c.status !== shown.alertStatus)
          || (c.event === "request" && c.requestId === id && c.status !== shown.orderStatus));
        if (elsewhere && !container.querySelector("form.action-form:focus-within")) {
          refresh(container, shell, id, "This request was changed elsewhere; it has been updated.");
        }
      });
      return null;
    },
  });

  async function refresh(container, shell, id, message) {
    try {
      const view = await shell.api(`/api/v1/workspace/requests/${encodeURIComponent(id)}`);
      draw(container, view, shell, id);
      if (message) shell.announce(message);
    } catch (_) { /* the page stays as it was */ }
  }

  function title(view) {
    const r = view.request || {};
    const code = r.code || {};
    return view.description || code.display || r.description || [view.modality, view.bodySite].filter(Boolean).join(" ") || "Imaging request";
  }

  function draw(container, view, shell, id) {
    const el = shell.el;
    container.dataset.alertId = view.alert ? view.alert.id : "";
    container.dataset.alertStatus = view.alert ? view.alert.status : "";
    container.dataset.orderStatus = view.orderStatus || "";
    const r = view.request || {};
    const verdict = view.verdict;
    const worklistHref = `#/worklist?date=${encodeURIComponent(view.requestDate || shell.today)}`;
    const nodes = [
      el("a", { href: worklistHref, class: "back-link", text: "Back to the worklist" }),
      shell.patientBanner(view.patient),
      view.patient ? el("p", {}, el("a", { href: `#/patient/${encodeURIComponent(view.patient.regionalPatientId)}`
        + (view.requestDate ? `?asOf=${encodeURIComponent(view.requestDate)}` : ""),
        class: "link-strong", text: "Imaging history across the region and dose" })) : null,
      el("h1", { tabindex: "-1" }, title(view), " ", shell.tag(verdict)),
      el("div", { class: `callout callout--${verdict}` },
        el("p", { class: "callout__lead", text: VERDICT_TEXT[verdict] || "" }),
        view.identity === "unknown" ? el("p", { text: "The patient was not found in the regional index, so no priors could be checked." }) : null),
      el("section", { "aria-labelledby": "req-title" },
        el("h2", { id: "req-title", text: "Requested procedure" }),
        shell.summaryList([
          ["Procedure", title(view)],
          ["Code", r.code && r.code.code ? `${r.code.code}${r.code.system ? ` (${r.code.system})` : ""}` : null],
          ["Modality", view.modality || r.modality],
          ["Body site", view.bodySite || r.bodySite],
          ["Laterality", (view.laterality || r.laterality) && (view.laterality || r.laterality) !== "none" ? (view.laterality || r.laterality) : "Not applicable"],
          ["Priority", r.priority || view.priority],
          ["Clinical indication", r.reason],
          ["Order number", view.placerOrderNumber],
          ["Requested at", view.requestedAt ? shell.formatDateTime(view.requestedAt) : null],
          ["Requesting trust", shell.trustLabel(view.requestingTrust)],
          ["Status", shell.tag(view.status)],
        ])),
    ];
    const priors = view.priors || [];
    nodes.push(el("section", { "aria-labelledby": "priors-title" },
      el("h2", { id: "priors-title", text: priors.length === 1 ? "1 comparable prior" : `${priors.length} comparable priors` }),
      priors.length ? el("ul", { class: "priors" }, priors.map((p, i) => prior(p, i, shell)))
        : el("p", { class: "hint", text: "None shown." })));
    if (view.alert) nodes.push(actions(view, shell, container, id));
    container.replaceChildren(...nodes.filter(Boolean));
  }

  function prior(p, index, shell) {
    const el = shell.el;
    const description = p.description || [p.modality, p.bodySite].filter(Boolean).join(" ") || "Imaging study";
    const url = p.viewerUrl ? shell.safeUrl(p.viewerUrl) : null;
    const headingId = `prior-${index}-title`;
    const where = p.trust ? shell.trustLabel(p.trust, p.trustName) : "Trust not recorded";
    const images = url
      ? el("a", { class: "button button--view", href: url, target: "_blank", rel: "noopener noreferrer",
        "aria-label": `View images: ${description}, ${shell.formatDate(p.studyDate)} (opens in a new tab)` }, "View images")
      : el("p", { class: "no-link" }, el("strong", { text: "Images not linked. " }),
        `Find them in the regional PACS by study UID ${p.studyInstanceUid || "not recorded"}`
        + (p.accessionNumber ? ` or accession number ${p.accessionNumber}.` : "."));
    const report = p.reportConclusion
      ? `${p.reportConclusion}${p.reportStatus && p.reportStatus !== "final" ? ` (${p.reportStatus} report)` : ""}`
        + (p.reportIssued ? ` · issued ${shell.formatDateTime(p.reportIssued)}` : "")
      : null;
    const reportUrl = p.reportUrl ? shell.safeUrl(p.reportUrl) : null;
    return el("li", { class: `prior prior--${p.severity === "warning" ? "warning" : "info"}`, "aria-labelledby": headingId },
      el("div", { class: "prior__main" },
        el("h3", { id: headingId, class: "prior__title" }, description, " ", shell.tag(p.severity === "warning" ? "warning" : "info")),
        el("p", { class: "prior__when" },
          el("strong", { text: shell.formatDate(p.studyDate) }), ` · ${daysText(p.daysAgo)} · `, where),
        shell.summaryList([
          ["Modality", p.modality || "Not known"],
          ["Body site", p.bodySite || "Not known"],
          ["Laterality", p.laterality && p.laterality !== "none" ? p.laterality : "Not applicable"],
          ["Rule", p.ruleText ? `${p.ruleText} (${p.rule})` : p.rule],
          ["Effective dose", doseText(p.effectiveDoseMsv)],
          ["Status", p.status && p.status !== "completed" ? p.status : null],
          ["Accession number", p.accessionNumber],
          ["Report", report ? report : reportUrl ? null : "No report received yet"],
        ], { class: "summary-list summary-list--compact" }),
        reportUrl ? el("p", {}, el("a", { href: reportUrl, target: "_blank", rel: "noopener noreferrer", text: "Read the report (opens in a new tab)" })) : null),
      el("div", { class: "prior__action" }, images));
  }

  function actions(view, shell, container, id) {
    const el = shell.el;
    const alert = view.alert;
    const allowed = alert.actions || [];
    const error = el("div", { class: "callout callout--error", role: "alert", hidden: true });
    const section = el("section", { class: "actions", "aria-labelledby": "actions-title" },
      el("h2", { id: "actions-title", text: "Decision" }));
    if (alert.status !== "open") {
      section.append(shell.summaryList([
        ["Status", shell.tag(alert.status)],
        ["Reason", alert.reason ? alert.reason.display : null],
        ["Comment", alert.comment],
        ["By", alert.actedBy],
        ["When", alert.actedAt ? shell.formatDateTime(alert.actedAt) : null],
        ["Dose avoided", alert.doseAvoidedMsv !== null && alert.doseAvoidedMsv !== undefined ? `≈ ${Number(alert.doseAvoidedMsv).toFixed(1)} mSv (estimate)` : null],
      ]));
    }
    section.append(error);

    async function act(action, body, message) {
      error.hidden = true;
      for (const b of section.querySelectorAll("button")) b.disabled = true;
      try {
        await shell.api(`/api/v1/alerts/${encodeURIComponent(alert.id)}/${action}`, { method: "POST", json: body });
        await refresh(container, shell, id, message);
        const heading = container.querySelector("#actions-title");
        if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
      } catch (e) {
        for (const b of section.querySelectorAll("button")) b.disabled = false;
        if (e.message !== "signed out") {
          error.textContent = `Could not save: ${e.message}`;
          error.hidden = false;
          error.focus && error.setAttribute("tabindex", "-1");
          error.focus();
        }
      }
    }

    if (allowed.includes("acknowledge")) {
      section.append(el("div", { class: "action" },
        el("h3", { text: "I have looked at the priors" }),
        el("p", { class: "hint", text: "Acknowledge when the priors do not change the request." }),
        el("button", { type: "button", class: "button button--secondary", text: "Acknowledge",
          onclick: () => act("acknowledge", { user: shell.me.username }, "Alert acknowledged.") })));
    }
    if (allowed.includes("override")) {
      const reasons = reasonsCache || [];
      const comment = el("textarea", { id: "override-comment", name: "comment", class: "textarea", rows: 3,
        "aria-describedby": "override-comment-hint" });
      const form = el("form", { class: "action action-form", novalidate: true, "aria-labelledby": "override-title" },
        el("h3", { id: "override-title", text: "Go ahead with the new scan" }),
        el("fieldset", { class: "fieldset" },
          el("legend", { class: "fieldset__legend", text: "Why is the new scan still needed?" }),
          el("div", { class: "radios" }, reasons.map((reason, i) => el("div", { class: "radios__item" },
            el("input", { type: "radio", id: `override-reason-${i}`, name: "reason", value: String(i), class: "radios__input" }),
            el("label", { for: `override-reason-${i}`, class: "radios__label", text: reason.display }))))),
        el("div", { class: "field" },
          el("label", { for: "override-comment", class: "label", text: "Comment" }),
          el("p", { id: "override-comment-hint", class: "hint", text: "The justification: what the prior does not answer." }),
          comment),
        el("button", { type: "submit", class: "button button--warning", text: "Record override" }));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const picked = form.querySelector("input[name=reason]:checked");
        const chosen = picked ? reasons[Number(picked.value)] : null;
        if (!chosen) {
          error.textContent = "Choose a reason for going ahead.";
          error.hidden = false;
          (form.querySelector("input[name=reason]") || form).focus();
          return;
        }
        if (chosen.commentRequired && !comment.value.trim()) {
          error.textContent = "Add a comment: this reason needs one.";
          error.hidden = false;
          comment.focus();
          return;
        }
        act("override", { reason: { system: chosen.system, code: chosen.code, display: chosen.display },
          comment: comment.value.trim() || null, user: shell.me.username }, `Alert overridden: ${chosen.display}.`);
      });
      section.append(form);
    }
    if (allowed.includes("cancel")) {
      const note = el("textarea", { id: "cancel-comment", name: "cancel-comment", class: "textarea", rows: 2 });
      const form = el("form", { class: "action action-form", novalidate: true, "aria-labelledby": "cancel-title" },
        el("h3", { id: "cancel-title", text: "Cancel the request as a duplicate" }),
        el("p", { class: "hint", text: "The prior answers the clinical question: the patient is not exposed again." }),
        el("div", { class: "field" }, el("label", { for: "cancel-comment", class: "label", text: "Comment (optional)" }), note),
        el("button", { type: "submit", class: "button button--secondary", text: "Cancel request as duplicate" }));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        act("cancel", { comment: note.value.trim() || "duplicate of a recent prior", user: shell.me.username },
          "Request cancelled as a duplicate.");
      });
      section.append(form);
    }
    if ((alert.history || []).length) {
      section.append(el("h3", { text: "History" }),
        el("ol", { class: "history" }, alert.history.map((h) => el("li", {},
          el("strong", { text: h.action }), ` · ${shell.formatDateTime(h.at)} · ${h.user || h.actor}`,
          h.reason && h.reason.display ? ` · ${h.reason.display}` : "",
          h.comment ? ` · “${h.comment}”` : ""))));
    }
    return section;
  }
})();
