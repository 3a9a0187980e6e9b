/* The worklist: the requests of the person's trust on one day, warnings first, live. */
"use strict";

(function () {
  const MODALITIES = [["", "All modalities"], ["CT", "CT"], ["MR", "MR"], ["XR", "X-ray"], ["US", "Ultrasound"],
    ["NM", "Nuclear medicine"], ["PT", "PET-CT"], ["MG", "Mammography"], ["OTHER", "Other"]];
  const STATUSES = [["", "All statuses"], ["open", "To review"], ["acknowledged", "Acknowledged"],
    ["overridden", "Overridden"], ["cancelled", "Cancelled"], ["active", "Waiting (no alert)"],
    ["completed", "Completed"]];
  const VERDICTS = [["", "All verdicts"], ["warning", "Warning"], ["info", "Info"], ["clear", "Clear"]];
  const IDENTITY = { confirmed: "Confirmed", probable: "Possible match", unknown: "Not in regional index" };

  function priorAge(item) {
    if (item.nearestPriorDays === null || item.nearestPriorDays === undefined) {
      return item.verdict === "clear" && item.identity === "unknown" ? "Not checked" : "None";
    }
    const n = Number(item.nearestPriorDays);
    return n <= 0 ? "Same day" : n === 1 ? "1 day" : `${n} days`;
  }

  function select(id, label, options, value) {
    return [el("label", { for: id, class: "label", text: label }),
      el("select", { id, name: id, class: "select" },
        options.map(([v, t]) => el("option", { value: v, text: t, selected: v === (value || "") })))];
  }

  let el;

  window.priorscan.registerPage({
    id: "worklist",
    title: "Worklist",
    async render(container, params, shell) {
      el = shell.el;
      const q = params.query;
      const day = /^\d{4}-\d{2}-\d{2}$/.test(q.get("date") || "") ? q.get("date") : shell.today;
      const filters = { modality: q.get("modality") || "", status: q.get("status") || "", verdict: q.get("verdict") || "" };
      const seen = new Set();
      let firstLoad = true;
      let pending = null;

      const heading = el("h1", { tabindex: "-1" }, "Worklist",
        el("span", { class: "caption", text: ` ${shell.me.trustName || shell.me.trust || "all trusts"}` }));
      const when = el("p", { class: "lede", text: `Requests for ${shell.formatDate(day, true)}` });
      const hrefFor = (changes) => {
        const next = new URLSearchParams({ date: day, ...filters, ...changes });
        for (const [k, v] of [...next.entries()]) if (!v) next.delete(k);
        return `#/worklist?${next}`;
      };
      const dayNav = el("nav", { class: "day-nav", "aria-label": "Other days" },
        el("a", { href: hrefFor({ date: shell.addDays(day, -1) }), class: "link-button", text: "Previous day" }),
        day !== shell.today ? el("a", { href: hrefFor({ date: shell.today }), class: "link-button", text: "Today" }) : null,
        el("a", { href: hrefFor({ date: shell.addDays(day, 1) }), class: "link-button", text: "Next day" }));

      const formError = el("div", { class: "callout callout--error", role: "alert", hidden: true });
      const form = el("form", { class: "filters", novalidate: true, "aria-label": "Filter the worklist" },
        shell.dateInput("wl-date", "Day", day, "For example, 15 3 2026"),
        el("div", { class: "filters__row" },
          el("div", { class: "field" }, select("wl-modality", "Modality", MODALITIES, filters.modality)),
          el("div", { class: "field" }, select("wl-status", "Status", STATUSES, filters.status)),
          el("div", { class: "field" }, select("wl-verdict", "Verdict", VERDICTS, filters.verdict)),
          el("div", { class: "field field--button" }, el("button", { type: "submit", class: "button button--secondary", text: "Show requests" }))),
        formError);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const chosen = shell.readDateInput(form, "wl-date");
        if (!chosen) {
          formError.textContent = "Enter a real date, for example 15 3 2026.";
          formError.hidden = false;
          form.querySelector("#wl-date-day").focus();
          return;
        }
        shell.navigate(hrefFor({ date: chosen, modality: form.elements["wl-modality"].value,
          status: form.elements["wl-status"].value, verdict: form.elements["wl-verdict"].value }));
      });

      const summary = el("p", { class: "summary", "aria-live": "polite" });
      const tableHost = el("div", { class: "table-host" });
      const newNotice = el("p", { class: "callout callout--info new-notice", hidden: true });
      container.append(heading, when, dayNav, form, newNotice, summary, tableHost);

      function row(item, fresh) {
        const title = item.description || [item.modality, item.bodySite].filter(Boolean).join(" ") || "Imaging request";
        const link = el("a", { href: `#/request/${encodeURIComponent(item.id)}`, class: "row-link" }, title);
        const patient = item.patientName
          ? [el("span", { class: "cell-main", text: item.patientName }),
            el("span", { class: "cell-sub", text: `NHS ${shell.nhsNumber(item.nhsNumber)}` })]
          : el("span", { class: "cell-sub", text: "Not identified" });
        return el("tr", { class: `worklist__row worklist__row--${item.verdict}`, "data-request-id": item.id },
          el("td", { "data-label": "Verdict" }, shell.tag(item.verdict), fresh ? [" ", shell.tag("new")] : null),
          el("th", { scope: "row", "data-label": "Request" }, link,
            el("span", { class: "cell-sub", text: [item.placerOrderNumber ? `Order ${item.placerOrderNumber}` : null,
              item.priority && item.priority !== "routine" ? item.priority.toUpperCase() : null].filter(Boolean).join(" · ") })),
          el("td", { "data-label": "Patient" }, patient),
          el("td", { "data-label": "Identity" }, IDENTITY[item.identity] || item.identity),
          el("td", { "data-label": "Nearest prior" }, priorAge(item)),
          el("td", { "data-label": "Requested" }, shell.formatTime(item.requestedAt)),
          el("td", { "data-label": "Status" }, shell.tag(item.status)));
      }

      async function load(reason) {
        const query = new URLSearchParams({ date: day });
        for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
        let body;
        try {
          body = await shell.api(`/api/v1/workspace/worklist?${query}`);
        } catch (error) {
          if (error.message !== "signed out") {
            tableHost.replaceChildren(el("p", { class: "callout callout--error", role: "alert",
              text: `The worklist could not be loaded: ${error.message}` }));
          }
          return;
        }
        const items = body.items || [];
        const fresh = items.filter((i) => !seen.has(i.id));
        const counts = { warning: 0, info: 0, clear: 0 };
        for (const item of items) counts[item.verdict] = (counts[item.verdict] || 0) + 1;
        summary.textContent = `${items.length} ${items.length === 1 ? "request" : "requests"}: `
          + `${counts.warning} with a warning, ${counts.info} with information, ${counts.clear} clear. `
          + `${body.openAlerts} ${body.openAlerts === 1 ? "alert" : "alerts"} to review at your trust.`;
        if (!items.length) {
          tableHost.replaceChildren(el("p", { class: "empty", text: "No requests for this day match these filters." }));
        } else {
          tableHost.replaceChildren(el("table", { class: "table worklist" },
            el("caption", { class: "table__caption", text: `Requests, ${shell.formatDate(day)}, warnings first` }),
            el("thead", {}, el("tr", {}, ["Verdict", "Request", "Patient", "Identity", "Nearest prior", "Requested", "Status"]
              .map((h) => el("th", { scope: "col", text: h })))),
            el("tbody", {}, items.map((i) => row(i, !firstLoad && !seen.has(i.id))))));
        }
        if (!firstLoad && fresh.length && reason === "live") {
          const warnings = fresh.filter((i) => i.verdict === "warning").length;
          const message = `${fresh.length} new ${fresh.length === 1 ? "request" : "requests"}`
            + (warnings ? `, ${warnings} with a warning` : "") + ".";
          newNotice.textContent = `${message} New rows are marked “New”.`;
          newNotice.hidden = false;
          shell.announce(message);
        }
        for (const item of items) seen.add(item.id);
        firstLoad = false;
      }

      shell.live.on("change", () => {
        window.clearTimeout(pending);
        pending = window.setTimeout(() => load("live"), 150);
      });
      await load("first");
      return () => window.clearTimeout(pending);
    },
  });
})();
