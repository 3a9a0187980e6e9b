/* Feeds: each trust's HL7 feeds for the people who keep priorscan running (GET /api/v1/feeds, scope
 * priorscan/operations): last message, last hour's messages and refusals, dead letters waiting, and feeds that have
 * gone quiet beyond their usual gap, quiet ones first. The same figures as `priorscan status` and /metrics. */
"use strict";

(function () {
  const REFRESH_MS = 30000;

  window.priorscan.registerPage({
    id: "feeds",
    title: "Feeds",
    render(container, params, shell) {
      const el = shell.el;
      const summary = el("p", { class: "lede", "aria-live": "polite" });
      const table = el("table", { class: "table", "aria-describedby": "feeds-caption" });
      const error = el("div", { class: "callout callout--error", role: "alert", hidden: true });
      container.append(el("h1", { tabindex: "-1", text: "Feeds" }), summary, error, el("div", { class: "table-host" }, table));

      // the quiet note repeats what the tag says; other notes (an unknown sender) are shown
      const notesOf = (feed) => feed.notes.filter((note) => !note.startsWith("quiet for")).join("; ");
      const minutes = (seconds) => (seconds === null || seconds === undefined ? "not known yet"
        : seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`);

      async function load() {
        let body;
        try {
          body = await shell.api("/api/v1/feeds");
        } catch (problem) {
          error.textContent = `The feeds could not be read: ${problem.message || problem}`;
          error.hidden = false;
          return;
        }
        error.hidden = true;
        const feeds = body.feeds || [];
        summary.textContent = feeds.length === 0 ? "No HL7 feed has sent anything yet."
          : `${feeds.length} feeds; ${body.quiet} quiet beyond their usual gap.`;
        const head = el("thead", {}, el("tr", {},
          ["Trust", "Sender", "Message type", "Last message", "Last hour", "Refused (last hour)", "Dead letters waiting",
            "Usual gap", "State"].map((text) => el("th", { scope: "col", text }))));
        const rows = feeds.map((feed) => el("tr", { class: feed.quiet ? "row--warning" : null },
          el("td", { text: feed.trust ? shell.trustLabel(feed.trust) : `unknown (${feed.sendingFacility})` }),
          el("td", { text: `${feed.sendingApplication} at ${feed.sendingFacility}` }),
          el("td", { text: feed.family }),
          el("td", { text: feed.lastMessageAt ? shell.formatDateTime(feed.lastMessageAt) : "never" }),
          el("td", { text: String(feed.messagesLastHour) }),
          el("td", { text: feed.rejectedLastHour === 0 ? "0"
            : `${feed.rejectedLastHour} (${Math.round(feed.errorRateLastHour * 100)}%)` }),
          el("td", { text: String(feed.deadLettersWaiting) }),
          el("td", { text: minutes(feed.usualGapSeconds) }),
          el("td", {}, feed.quiet ? shell.tag("warning", `Quiet for ${minutes(feed.quietForSeconds)}`)
            : shell.tag("clear", "Flowing"), notesOf(feed) ? el("span", { class: "hint", text: ` ${notesOf(feed)}` }) : null)));
        table.replaceChildren(el("caption", { id: "feeds-caption", class: "table__caption",
          text: "HL7 feeds by trust, quiet ones first" }), head, el("tbody", {}, rows));
      }

      load();
      const timer = setInterval(load, REFRESH_MS);
      return () => clearInterval(timer);
    },
  });
})();
