/* Identity review (role mpi-steward): the review queue by risk, two records side by side with their differences
   marked, the waterfall of the model's weights, and L (link) / N (not the same person) / S (skip), J/K to move.
   Reads and settles items through the MPI review API; every decision is audited there and sticks. */
"use strict";

(function () {
  const FIELDS = [
    ["family", "Family name"], ["given", "Given names"], ["birthDate", "Birth date"], ["sex", "Sex"],
    ["postcode", "Postcode"], ["address", "Address"], ["nhsNumberPresent", "NHS number held"],
    ["nhsVerification", "NHS number verification"], ["trust", "Trust"], ["system", "Identifier system"],
  ];

  function text(value) {
    if (value === true) return "yes";
    if (value === false) return "no";
    if (value === null || value === undefined || value === "") return "—";
    return String(value);
  }

  function percent(p) {
    if (p === null || p === undefined) return "—";
    return (100 * p).toFixed(p > 0.999 || p < 0.001 ? 3 : 1) + "%";
  }

  window.priorscan.registerPage({
    id: "identity-review",
    title: "Identity review",
    render(container, params, shell) {
      const el = shell.el;
      if (!document.querySelector('link[href="/ui/static/review.css"]')) {
        document.head.append(el("link", { rel: "stylesheet", href: "/ui/static/review.css" }));
      }
      const state = { items: [], index: 0, busy: false, total: 0 };
      const count = el("span", { id: "queue-count", text: "0" });
      const list = el("ol", { id: "queue", class: "queue-list" });
      const empty = el("p", { id: "queue-empty", class: "empty", text: "Nothing to review.", hidden: true });
      const itemId = el("span", { id: "item-id" });
      const probability = el("span", { id: "item-probability" });
      const model = el("code", { id: "item-model" });
      const guard = el("span", { id: "item-guard" });
      const compare = el("tbody", { id: "compare-body" });
      const waterfall = el("tbody", { id: "waterfall-body" });
      const button = (id, cls, key, label, decision) => el("button", { id, type: "button", class: `btn ${cls}`,
        "aria-keyshortcuts": key, text: label, onclick: () => decide(decision) });
      const item = el("section", { id: "item", class: "item panel", "aria-labelledby": "item-title", hidden: true },
        el("h2", { id: "item-title" }, "Item ", itemId, ": ", probability, " likely the same person"),
        el("p", { class: "hint" }, "Model ", model, guard, ". Keys: ", el("kbd", { text: "L" }), " link (same person), ",
          el("kbd", { text: "N" }), " not the same person, ", el("kbd", { text: "S" }), " skip, ",
          el("kbd", { text: "J" }), "/", el("kbd", { text: "K" }), " next/previous."),
        el("table", { class: "compare" },
          el("caption", { class: "visually-hidden", text: "The two records side by side; rows where they differ are marked" }),
          el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Field" }), el("th", { scope: "col", text: "Record" }),
            el("th", { scope: "col", text: "Candidate" }),
            el("th", { scope: "col" }, el("span", { class: "visually-hidden", text: "Agreement" })))),
          compare),
        el("h3", { id: "waterfall-title", text: "Why the model thinks so" }),
        el("p", { class: "hint", text: "Each field adds its match weight (in bits) to the prior; the total gives the probability." }),
        el("table", { class: "waterfall", "aria-labelledby": "waterfall-title" },
          el("thead", {}, el("tr", {}, ...["Step", "Level"].map((t) => el("th", { scope: "col", text: t })),
            el("th", { scope: "col", class: "num", text: "Weight" }), el("th", { scope: "col", class: "num", text: "Running total" }),
            el("th", { scope: "col", text: "Bar" }))),
          waterfall),
        el("div", { class: "decision-bar" },
          button("decide-link", "btn-primary", "L", "Link: same person (L)", "match"),
          button("decide-apart", "btn-danger", "N", "Not the same person (N)", "no-match"),
          button("decide-skip", "", "S", "Skip (S)", "skip")));
      container.append(el("div", { class: "review-layout" },
        el("section", { class: "queue panel", "aria-labelledby": "queue-title" },
          el("h1", { id: "queue-title", tabindex: "-1", text: "Review queue" }),
          el("p", { class: "hint" }, count, " open, the likeliest missed link first."), list, empty),
        item));

      const cell = (tag, content, cls) => el(tag, { class: cls, text: content });

      function renderQueue() {
        list.replaceChildren(...state.items.map((entry, i) => el("li", {},
          el("button", { type: "button", "aria-current": i === state.index ? "true" : "false",
            onclick: () => { state.index = i; renderQueue(); renderItem(); } },
          el("span", { class: "risk", text: percent(entry.probability) }),
          ` · item ${entry.id} · differs on ${entry.differences.length} field(s)`))));
        count.textContent = String(state.total);
        empty.hidden = state.items.length > 0;
      }

      function renderWaterfall(shown) {
        if (!shown || !shown.prior) {
          waterfall.replaceChildren(el("tr", {}, el("td", { colspan: "5", text: "No breakdown was stored with this item." })));
          return;
        }
        const steps = [{ comparison: "prior (any two records)", level: "", weight: shown.prior.weight,
          cumulative: shown.prior.weight }].concat(shown.steps);
        const scale = Math.max(1, ...steps.map((s) => Math.abs(s.weight)));
        const rows = steps.map((step) => {
          const bar = el("span", { class: "bar " + (step.weight >= 0 ? "for" : "against"), "aria-hidden": "true" });
          bar.style.width = (8 * Math.abs(step.weight) / scale).toFixed(2) + "rem";
          return el("tr", {}, el("th", { scope: "row", text: step.comparison }), cell("td", step.level || ""),
            cell("td", (step.weight >= 0 ? "+" : "") + step.weight.toFixed(2), "num"),
            cell("td", step.cumulative.toFixed(2), "num"), el("td", {}, bar));
        });
        rows.push(el("tr", { class: "total" }, el("th", { scope: "row", text: "total" }),
          cell("td", "probability " + percent(shown.probability)), cell("td", shown.total.toFixed(2), "num"),
          cell("td", ""), cell("td", "")));
        waterfall.replaceChildren(...rows);
      }

      function renderItem() {
        const current = state.items[state.index];
        item.hidden = !current;
        if (!current) return;
        itemId.textContent = String(current.id);
        probability.textContent = percent(current.probability);
        model.textContent = (current.waterfall && current.waterfall.modelVersion) || current.modelVersion || "unknown";
        guard.textContent = current.guard ? `; held for review by the rule "${current.guard}"` : "";
        compare.replaceChildren(...FIELDS.map(([key, label]) => {
          const differs = current.differences.includes(key);
          return el("tr", { class: differs ? "differs" : "same" }, el("th", { scope: "row", text: label }),
            cell("td", text(current.record && current.record[key])),
            cell("td", text(current.candidate && current.candidate[key])), cell("td", differs ? "differs" : "", "mark"));
        }));
        renderWaterfall(current.waterfall);
      }

      async function load() {
        const body = await shell.api("/api/v1/mpi/review?limit=200&order=risk");
        state.items = body.items;
        state.total = body.total;
        state.index = Math.min(state.index, Math.max(0, state.items.length - 1));
        renderQueue();
        renderItem();
      }

      function move(step) {
        if (!state.items.length) return;
        state.index = (state.index + step + state.items.length) % state.items.length;
        renderQueue();
        renderItem();
      }

      async function decide(decision) {
        const current = state.items[state.index];
        if (!current || state.busy) return;
        if (decision === "skip") {
          move(1);
          shell.announce(`Item ${current.id} skipped.`);
          return;
        }
        state.busy = true;
        try {
          await shell.api(`/api/v1/mpi/review/${current.id}`, { method: "POST", json: { decision } });
          shell.announce(decision === "match" ? `Item ${current.id}: linked as one person.`
            : `Item ${current.id}: kept apart as different people.`);
          await load();
        } catch (error) {
          if (error.message !== "signed out") shell.announce(`Item ${current.id} was not settled: ${error.message}`);
        } finally {
          state.busy = false;
        }
      }

      function onKey(event) {
        if (event.ctrlKey || event.metaKey || event.altKey) return;
        const target = event.target;
        if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
        const actions = { l: () => decide("match"), n: () => decide("no-match"), s: () => decide("skip"),
          j: () => move(1), k: () => move(-1) };
        const action = actions[event.key.toLowerCase()];
        if (action) {
          event.preventDefault();
          action();
        }
      }

      document.addEventListener("keydown", onKey);
      load().catch((error) => { if (error.message !== "signed out") shell.announce(error.message); });
      return () => document.removeEventListener("keydown", onKey);
    },
  });
})();
