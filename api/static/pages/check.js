/* Check a request by hand: comparable recent imaging for a patient and a procedure (the duplicate-check API). */
"use strict";

(function () {
  const VERDICT = {
    warning: "Comparable imaging within the warning window. Look at it; record a reason if the new scan is still needed.",
    info: "Related prior imaging exists. Look at it before the scan.",
    clear: "No comparable recent imaging found in the region.",
  };
  const IDENTITY = {
    confirmed: "Identity confirmed across trusts.",
    probable: "Possible match only: check the patient's identity before relying on these priors.",
    unknown: "Patient not found in the regional index: no priors could be checked.",
  };

  window.priorscan.registerPage({
    id: "check",
    title: "Check a request",
    render(container, params, shell) {
      const el = shell.el;
      const field = (id, label, input, hint) => el("div", { class: "field" },
        el("label", { for: id, class: "label", text: label }),
        hint ? el("p", { id: `${id}-hint`, class: "hint", text: hint }) : null, input);
      const select = (id, options) => el("select", { id, name: id, class: "select" },
        options.map(([v, t]) => el("option", { value: v, text: t })));
      const error = el("div", { class: "callout callout--error", role: "alert", hidden: true });
      const result = el("div", { class: "check-result", "aria-live": "polite" });
      const form = el("form", { class: "check", novalidate: true, "aria-labelledby": "check-title" },
        el("fieldset", { class: "fieldset" },
          el("legend", { class: "fieldset__legend fieldset__legend--m", text: "Patient" }),
          field("check-nhs", "NHS number", el("input", { id: "check-nhs", name: "nhs", class: "input input--width-10",
            inputmode: "numeric", autocomplete: "off", "aria-describedby": "check-nhs-hint" }), "10 digits, for example 943 476 5919"),
          field("check-family", "Family name", el("input", { id: "check-family", name: "family", class: "input", autocomplete: "off" })),
          field("check-given", "Given name", el("input", { id: "check-given", name: "given", class: "input", autocomplete: "off" })),
          shell.dateInput("check-birth", "Date of birth", null, "For example, 17 5 1970"),
          field("check-sex", "Sex", select("check-sex", [["", "Not given"], ["female", "Female"], ["male", "Male"], ["other", "Other"], ["unknown", "Unknown"]]))),
        el("fieldset", { class: "fieldset" },
          el("legend", { class: "fieldset__legend fieldset__legend--m", text: "Requested examination" }),
          field("check-modality", "Modality", select("check-modality", [["CT", "CT"], ["XR", "X-ray (XR)"], ["MR", "MR"],
            ["US", "Ultrasound (US)"], ["NM", "Nuclear medicine (NM)"], ["PT", "PET-CT (PT)"], ["MG", "Mammography (MG)"]])),
          field("check-site", "Body site", el("input", { id: "check-site", name: "bodySite", class: "input", autocomplete: "off",
            "aria-describedby": "check-site-hint" }), "For example chest, head, left wrist, chest abdomen pelvis"),
          field("check-laterality", "Laterality", select("check-laterality", [["", "Not applicable"], ["left", "Left"], ["right", "Right"], ["both", "Both"]])),
          field("check-priority", "Priority", select("check-priority", [["routine", "Routine"], ["urgent", "Urgent"], ["stat", "Emergency (STAT)"]])),
          field("check-order", "Order number (optional)", el("input", { id: "check-order", name: "placerOrderNumber", class: "input", autocomplete: "off" })),
          field("check-reason", "Clinical indication (optional)", el("input", { id: "check-reason", name: "reason", class: "input",
            autocomplete: "off", "aria-describedby": "check-reason-hint" }), "For example trauma, staging, follow-up")),
        error,
        el("button", { type: "submit", class: "button", text: "Check for recent imaging" }));
      container.append(el("h1", { id: "check-title", tabindex: "-1", text: "Check a request" }),
        el("p", { class: "lede", text: "Find comparable recent imaging anywhere in the region before a request is justified. Give the NHS number, or the name and date of birth." }),
        form, result);

      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const v = (name) => (form.elements[name].value || "").trim();
        const nhs = v("check-nhs").replace(/[\s-]/g, "");
        const birth = shell.readDateInput(form, "check-birth");
        const birthTyped = ["day", "month", "year"].some((k) => form.querySelector(`#check-birth-${k}`).value.trim());
        let problem = "";
        if (nhs && !/^\d{10}$/.test(nhs)) problem = "An NHS number has 10 digits.";
        else if (birthTyped && !birth) problem = "Date of birth must be a real date, for example 17 5 1970.";
        else if (!nhs && !(v("check-family") && birth)) problem = "Give the NHS number, or family name and date of birth.";
        else if (!v("check-site")) problem = "Give the body site.";
        error.textContent = problem;
        error.hidden = !problem;
        if (problem) { error.setAttribute("tabindex", "-1"); error.focus(); return; }
        const patient = {};
        if (nhs) patient.identifiers = [{ system: "https://fhir.nhs.uk/Id/nhs-number", value: nhs }];
        if (v("check-family") || v("check-given")) patient.name = { family: v("check-family") || null, given: v("check-given") ? v("check-given").split(/\s+/) : [] };
        if (birth) patient.birthDate = birth;
        if (v("check-sex")) patient.sex = v("check-sex");
        const request = { modality: v("check-modality"), bodySite: v("check-site"), priority: v("check-priority") || null,
          requestingTrust: shell.me.trust || null };
        if (v("check-laterality")) request.laterality = v("check-laterality");
        if (v("check-order")) request.placerOrderNumber = v("check-order");
        if (v("check-reason")) request.reason = v("check-reason");
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        result.replaceChildren(el("p", { class: "muted", text: "Checking…" }));
        try {
          const answer = await shell.api("/api/v1/duplicate-check", { method: "POST", json: { patient, request } });
          const verdict = VERDICT[answer.verdict] ? answer.verdict : "clear";
          result.replaceChildren(el("div", { class: `callout callout--${verdict} verdict` },
            el("h2", {}, shell.tag(verdict), " ", VERDICT[verdict]),
            el("p", { text: IDENTITY[answer.identity] || "" }),
            (answer.priors || []).length ? el("p", { text: `${answer.priors.length} comparable ${answer.priors.length === 1 ? "prior" : "priors"} found.` }) : null,
            answer.alertId ? el("p", {}, "An alert was raised for this request: ",
              el("a", { href: `#/request/alert-${encodeURIComponent(answer.alertId)}`, text: "open it to see the priors and decide" }), ".") : null));
        } catch (e) {
          result.replaceChildren();
          if (e.message !== "signed out") { error.textContent = `The check failed: ${e.message}`; error.hidden = false; }
        } finally {
          button.disabled = false;
        }
      });
      return null;
    },
  });
})();
