/* The patient view: imaging across the five trusts, cumulative effective dose (an estimate) over rolling windows,
 * DRL flags, and alerts and overrides in their place on the timeline. */
"use strict";

(function () {
  function dose(value) {
    if (value === null || value === undefined) return "No estimate";
    const n = Number(value);
    return `≈ ${n < 0.1 ? n.toFixed(3) : n.toFixed(1)} mSv`;
  }

  window.priorscan.registerPage({
    id: "patient",
    title: "Patient",
    async render(container, params, shell) {
      const el = shell.el;
      const id = params.path[0] || "";
      const asOf = /^\d{4}-\d{2}-\d{2}$/.test(params.query.get("asOf") || "") ? params.query.get("asOf") : null;
      container.append(el("p", { class: "muted", text: "Loading the patient's imaging…" }));
      let view;
      try {
        view = await shell.api(`/api/v1/workspace/patients/${encodeURIComponent(id)}${asOf ? `?asOf=${asOf}` : ""}`);
      } catch (error) {
        if (error.message === "signed out") return null;
        container.replaceChildren(el("h1", { tabindex: "-1", text: "Patient not found" }),
          el("p", { text: error.status === 404 ? "There is no such patient in the regional index." : `It could not be loaded: ${error.message}` }));
        return null;
      }
      const p = view.patient;
      const back = el("a", { href: "#/worklist", class: "back-link", text: "Back to the worklist",
        onclick: (event) => { if (window.history.length > 1) { event.preventDefault(); window.history.back(); } } });
      const windows = el("section", { "aria-labelledby": "dose-title" },
        el("h2", { id: "dose-title", text: "Cumulative effective dose (estimate)" }),
        el("table", { class: "table dose-table" },
          el("caption", { class: "table__caption", text: `Ionising studies across the region, to ${shell.formatDate(view.asOf)}` }),
          el("thead", {}, el("tr", {}, ["Period", "Effective dose (estimate)", "Ionising studies", "Without an estimate"]
            .map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, view.doseWindows.map((w) => el("tr", {},
            el("th", { scope: "row", "data-label": "Period", text: w.label }),
            el("td", { "data-label": "Effective dose (estimate)", text: `≈ ${Number(w.totalMsv).toFixed(1)} mSv` }),
            el("td", { "data-label": "Ionising studies", text: String(w.ionisingStudies) }),
            el("td", { "data-label": "Without an estimate", text: String(w.studiesWithoutEstimate) }))))),
        el("p", { class: "hint", text: view.doseNote }));

      const events = [];
      for (const s of view.studies) events.push({ date: s.studyDate, at: s.studyDateTime, kind: "study", item: s });
      for (const a of view.alerts) events.push({ date: a.requestDate, at: a.createdAt, kind: "alert", item: a });
      for (const o of view.orders) events.push({ date: o.orderDate, at: o.orderedAt, kind: "order", item: o });
      events.sort((x, y) => String(y.date || "").localeCompare(String(x.date || "")) || String(y.at || "").localeCompare(String(x.at || "")));

      function study(s) {
        const description = s.description || [s.modality, s.bodySite].filter(Boolean).join(" ") || "Imaging study";
        const url = s.viewerUrl ? shell.safeUrl(s.viewerUrl) : null;
        const drl = s.drl && s.drl.above ? el("strong", { class: "tag tag--orange", text: `Above national DRL (${s.drl.label})` }) : null;
        return [
          el("h3", { class: "timeline__title" }, `${s.modality || "?"} · ${description}`, drl ? [" ", drl] : null,
            s.identity !== "confirmed" ? [" ", shell.tag(s.identity === "provisional" ? "provisional" : "probable")] : null,
            s.status === "cancelled" ? [" ", shell.tag("cancelled")] : null,
            s.withdrawn ? [" ", shell.tag("cancelled", `Withdrawn: ${s.withdrawn}`)] : null,
            s.notPatient ? [" ", shell.tag("cancelled", `Not a patient examination (QA/physics test): ${s.notPatient}`)] : null),
          el("p", { class: "timeline__meta", text: [shell.trustLabel(s.trust, s.trustName),
            s.bodySite ? `Region: ${s.bodySite}` : "Region not known",
            s.laterality && s.laterality !== "none" ? `Side: ${s.laterality}` : null,
            `Effective dose: ${dose(s.effectiveDoseMsv)}${s.effectiveDoseMsv !== null && s.effectiveDoseMsv !== undefined ? " (estimate)" : ""}`,
            s.dlpMgycm ? `DLP ${Number(s.dlpMgycm).toFixed(0)} mGy·cm` : null,
            s.ctdivolMgy ? `CTDIvol ${Number(s.ctdivolMgy).toFixed(1)} mGy` : null].filter(Boolean).join(" · ") }),
          s.reportConclusion ? el("p", { class: "timeline__report" }, el("strong", { text: "Report: " }), s.reportConclusion) : null,
          url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "button button--view button--small",
            "aria-label": `View images: ${description}, ${shell.formatDate(s.studyDate)} (opens in a new tab)` }, "View images")
            : el("p", { class: "no-link", text: `Images not linked: study UID ${s.studyInstanceUid}` }),
        ];
      }

      function alert(a) {
        const r = a.request || {};
        const what = r.description || [r.modality, r.bodySite].filter(Boolean).join(" ") || "Imaging request";
        return [
          el("h3", { class: "timeline__title" }, shell.tag(a.verdict), ` Alert: ${what} `, shell.tag(a.status)),
          el("p", { class: "timeline__meta", text: [`Requested at ${shell.trustLabel(a.requestingTrust)}`,
            a.placerOrderNumber ? `Order ${a.placerOrderNumber}` : null,
            `${a.priorCount} ${a.priorCount === 1 ? "prior" : "priors"} shown`].filter(Boolean).join(" · ") }),
          a.status === "overridden" || a.status === "acknowledged" || a.status === "cancelled"
            ? el("p", { class: "timeline__decision" }, el("strong", { text: `${a.status[0].toUpperCase()}${a.status.slice(1)}` }),
              a.reason ? `: ${a.reason}` : "", a.comment ? ` — “${a.comment}”` : "",
              a.actedBy ? ` · ${a.actedBy}` : "", a.actedAt ? ` · ${shell.formatDateTime(a.actedAt)}` : "") : null,
          shell.me.trust === a.requestingTrust || !shell.me.trust
            ? el("a", { href: `#/request/${encodeURIComponent(a.requestId)}`, text: "Open the request" }) : null,
        ];
      }

      function order(o) {
        return [
          el("h3", { class: "timeline__title" }, `Request: ${o.description || [o.modality, o.bodySite].filter(Boolean).join(" ")}`, " ", shell.tag(o.status)),
          el("p", { class: "timeline__meta", text: [shell.trustLabel(o.requestingTrust), `Order ${o.placerOrderNumber}`,
            o.orderedAt ? shell.formatDateTime(o.orderedAt) : null].filter(Boolean).join(" · ") }),
        ];
      }

      const timeline = el("section", { "aria-labelledby": "timeline-title" },
        el("h2", { id: "timeline-title", text: "Imaging timeline, newest first" }),
        events.length ? el("ol", { class: "timeline" }, events.map((e) => el("li", { class: `timeline__item timeline__item--${e.kind}` },
          el("p", { class: "timeline__date", text: shell.formatDate(e.date) }),
          el("div", { class: "timeline__body" }, e.kind === "study" ? study(e.item) : e.kind === "alert" ? alert(e.item) : order(e.item)))))
          : el("p", { class: "hint", text: "No imaging on record in the region." }));

      container.replaceChildren(back, shell.patientBanner(p),
        el("h1", { tabindex: "-1", text: `Imaging across the region: ${p.name}` }),
        el("p", { class: "lede", text: `${view.studies.length} ${view.studies.length === 1 ? "study" : "studies"} at ${
          new Set(view.studies.map((s) => s.trust).filter(Boolean)).size} of the region's trusts.` }),
        windows, timeline);
      return null;
    },
  });
})();
