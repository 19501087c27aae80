/* forge playground --demo: the banner, the Reset demo button, and a short tour one may ignore.
   Loaded before playground.js, whose start() calls startDemo(session.demo) when the demo runs. */
"use strict";

const TOUR = [
  ["Health", "As @ops in #ops, run /forge health: the demo's ClientForge API, PostgreSQL and Redis. " +
    "Elasticsearch is left out, and health says how to start it.", "/forge health"],
  ["The DLQ grows", "/forge queue health: email jobs use up their 5 attempts (SMTP 421, mailbox full, " +
    "a template error) and data-sync lags. At {threshold} dead email jobs Alertmanager pages #alerts.",
    "/forge queue health"],
  ["Clear it as operator", "In #ops, /forge dlq clear email, and type the queue's name to confirm. " +
    "It is destructive, so it waits for a second person.", "/forge dlq clear email"],
  ["Approve as lead", "Switch \"You are\" to @lead and press Approve on the request card.", ""],
  ["The alert resolves", "Open #alerts: with the DLQ empty the card turns resolved. " +
    "(/forge dlq retry email instead sends jobs back to a worker that now succeeds.)", ""],
  ["An incident checklist", "While the card fires, declare an incident for it: forge opens it in #incidents " +
    "with the runbook's checklist, its commands as Run buttons.",
    "/forge incident declare P2 Email DLQ filled during SMTP outage"],
];

function startDemo(demo) {
  document.body.classList.add("demo");
  $("demo-bar").hidden = false;
  $("demo-where").textContent =
    `demo: a live ClientForge in Redis db ${demo.redis} and PostgreSQL ${demo.database}; nothing real is touched`;
  $("demo-reset").addEventListener("click", resetDemo);
  $("tour-next").addEventListener("click", () => showStep(tourStep + 1, demo));
  $("tour-back").addEventListener("click", () => showStep(tourStep - 1, demo));
  $("tour-hide").addEventListener("click", () => { $("tour").hidden = true; $("tour-open").hidden = false; });
  $("tour-open").addEventListener("click", () => { $("tour").hidden = false; $("tour-open").hidden = true; });
  $("tour-try").addEventListener("click", () => { $("text").value = TOUR[tourStep][2]; $("text").focus(); });
  showStep(0, demo);
}

let tourStep = 0;

function showStep(n, demo) {
  tourStep = Math.max(0, Math.min(TOUR.length - 1, n));
  const [title, text, command] = TOUR[tourStep];
  $("tour-title").textContent = `${tourStep + 1}/${TOUR.length} · ${title}`;
  $("tour-text").textContent = text.replace("{threshold}", demo.threshold);
  $("tour-try").hidden = !command;
  $("tour-back").disabled = tourStep === 0;
  $("tour-next").disabled = tourStep === TOUR.length - 1;
}

async function resetDemo() {
  $("demo-reset").disabled = true;
  showStatus("resetting the demo…");
  try {
    const response = await fetch("demo/reset", {
      method: "POST", headers: { "Content-Type": "application/json", "X-Forge-CSRF": state.csrf }, body: "{}",
    });
    const answer = await response.json();
    showStatus(answer.ok ? "demo reset: empty queues, a fresh CRM database, the SMTP outage back on" :
      answer.error || `HTTP ${response.status}`);
  } finally {
    $("demo-reset").disabled = false;
  }
}
