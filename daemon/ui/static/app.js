// The kiosk page: renders the view the daemon pushes (server-sent events) and posts taps.
// No text lives here: every word comes from the server's catalogue tables (msg.text) through
// data-t attributes in index.html. No request leaves 127.0.0.1 (CSP default-src 'self').
"use strict";

(() => {
  const HEARTBEAT_MS = 2000;
  // A new question puts its answer buttons where the last question's were: a tap in the
  // first moments after it appears is the previous tap bouncing (a tremor, a double tap), not
  // an answer to a question nobody has read yet. (Taps made on a screen that has gone are
  // dropped by the daemon; see docs/ui.md.)
  const ANSWER_GUARD_MS = 400;
  const state = { msg: null, tapAt: null, countdown: null, question: null, answerReadyAt: 0 };
  // Tap-to-render latencies in ms, read by the tests and the benchmark.
  const metrics = { tapToRender: [], renders: 0, taps: 0, tapErrors: 0, bouncedAnswers: 0 };
  window.kioskMetrics = metrics;

  const byId = (id) => document.getElementById(id);

  function field(view, path) {
    let value = view;
    for (const part of path.split(".")) {
      if (value === null || typeof value !== "object") return undefined;
      value = value[part];
    }
    return value;
  }

  function truthy(value) {
    if (Array.isArray(value)) return value.length > 0;
    return value !== undefined && value !== null && value !== false && value !== "";
  }

  function format(text, el, view) {
    for (const attr of el.attributes) {
      if (!attr.name.startsWith("data-p-")) continue;
      let value = field(view, attr.value);
      if (Array.isArray(value)) value = value.join(", ");
      text = text.split("{" + attr.name.slice(7) + "}").join(value === undefined ? "" : String(value));
    }
    return text;
  }

  // Fill one cloned screen (or the static chrome) from the current message.
  function fill(root, msg) {
    const view = msg.view;
    const table = (el) => {
      const panel = el.closest("[data-lang]");
      return panel && panel.dataset.lang !== msg.lang ? msg.alt : msg.text;
    };
    for (const el of root.querySelectorAll("[data-if]")) {
      if (!truthy(field(view, el.dataset.if))) el.remove();
    }
    for (const el of root.querySelectorAll("[data-if-not]")) {
      if (truthy(field(view, el.dataset.ifNot))) el.remove();
    }
    for (const el of root.querySelectorAll("[data-if-eq]")) {
      const [path, want] = el.dataset.ifEq.split(":");
      if (String(field(view, path)) !== want) el.remove();
    }
    for (const el of root.querySelectorAll("[data-if-in]")) {
      const [path, wants] = el.dataset.ifIn.split(":");
      if (!wants.split(",").includes(String(field(view, path)))) el.remove();
    }
    for (const el of root.querySelectorAll("[data-options]")) {
      const chosen = field(view, "question.answer");
      el.dataset.question = String(field(view, "question.id") || "");
      for (const option of msg.derived.options || []) {
        const button = byId("tpl-option").content.firstElementChild.cloneNode(true);
        button.dataset.value = option.id;
        const icon = { yes: "#i-check", no: "#i-cross" }[option.id];
        if (icon) button.querySelector("use").setAttribute("href", icon);
        else button.querySelector("svg").remove();
        button.querySelector("[data-option-text]").textContent = option.text;
        button.classList.add("opt-" + option.id);
        button.setAttribute("aria-pressed", String(option.id === chosen));
        el.append(button);
      }
    }
    for (const el of root.querySelectorAll("[data-answers]")) {
      for (const row of msg.derived.answers || []) {
        const item = byId("tpl-answer").content.firstElementChild.cloneNode(true);
        item.querySelector("[data-answer-question]").textContent = row.question;
        item.querySelector("[data-answer-text]").textContent = row.answer;
        el.append(item);
      }
    }
    for (const el of root.querySelectorAll("[data-keypad]")) {
      el.replaceWith(byId("tpl-keypad").content.cloneNode(true));
    }
    for (const el of root.querySelectorAll("[data-reasons]")) {
      el.replaceWith(byId("tpl-reasons").content.cloneNode(true));
    }
    for (const el of root.querySelectorAll("[data-alerts]")) {
      for (const code of field(view, "alerts") || []) {
        const item = byId("tpl-alert").content.firstElementChild.cloneNode(true);
        item.dataset.t = item.dataset.tPrefix + code;
        el.append(item);
      }
    }
    for (const el of root.querySelectorAll("[data-t-from]")) {
      el.dataset.t = el.dataset.tPrefix + String(field(view, el.dataset.tFrom));
      if (!table(el)[el.dataset.t]) el.dataset.t = el.dataset.tPrefix + "fault";
    }
    for (const el of root.querySelectorAll("[data-t]")) {
      const key = msg.large_text && el.dataset.tLarge ? el.dataset.tLarge : el.dataset.t;
      el.textContent = format(table(el)[key] || "", el, view);
    }
    for (const el of root.querySelectorAll("[data-t-aria]")) {
      el.setAttribute("aria-label", msg.text[el.dataset.tAria] || "");
    }
    for (const el of root.querySelectorAll("[data-field]")) {
      const value = field(view, el.dataset.field);
      el.textContent = value === undefined || value === null ? "" : String(value);
    }
    for (const el of root.querySelectorAll("[data-derived]")) {
      el.textContent = msg.derived[el.dataset.derived] || "";
    }
  }

  function render(msg) {
    state.msg = msg;
    const tpl = byId("tpl-" + msg.screen) || byId("tpl-see_reception");
    const screen = tpl.content.cloneNode(true);
    fill(screen, msg);
    const main = byId("screen");
    main.replaceChildren(screen);
    document.documentElement.lang = msg.lang;
    document.body.classList.toggle("large", msg.large_text);
    document.body.dataset.screen = msg.screen;
    fill(byId("bar"), msg);
    for (const el of byId("bar").querySelectorAll("[data-hide-on]")) {
      el.hidden = el.dataset.hideOn.split(" ").includes(msg.screen);
    }
    const help = byId("bar").querySelector("[data-action=help]");
    help.hidden = msg.view.help_available === false;
    const requested = byId("help-requested");
    requested.hidden = !msg.view.help_requested;
    fill(requested, msg);
    document.title = msg.text["app.title"] || "";
    const banner = byId("simulated");
    banner.hidden = !msg.simulated;
    fill(banner, msg);
    renderTimeout(msg);
    fill(byId("reconnecting"), msg);
    main.dataset.screen = msg.screen;
    main.dataset.lang = msg.lang;
    main.dataset.seq = String(msg.seq);
    const question = msg.screen === "questions" ? String(field(msg.view, "question.id")) : null;
    if (question !== state.question) {
      state.question = question;
      state.answerReadyAt = question === null ? 0 : performance.now() + ANSWER_GUARD_MS;
      main.dataset.answerReadyAt = String(state.answerReadyAt);
    }
    metrics.renders += 1;
    if (state.tapAt !== null) {
      const tapAt = state.tapAt;
      state.tapAt = null;
      // The next frame is the first one showing the new screen.
      requestAnimationFrame(() => {
        metrics.tapToRender.push(performance.now() - tapAt);
      });
    }
  }

  function renderTimeout(msg) {
    const box = byId("timeout");
    const timeout = msg.view.timeout;
    clearInterval(state.countdown);
    if (!timeout || !timeout.warning) {
      box.hidden = true;
      return;
    }
    let remaining = Number(timeout.remaining_s) || 0;
    const paint = () => fill(box, { ...msg, view: { remaining_s: remaining } });
    paint();
    box.hidden = false;
    state.countdown = setInterval(() => {
      remaining = Math.max(0, remaining - 1);
      paint();
    }, 1000);
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
    });
    if (!response.ok) throw new Error(String(response.status));
  }

  function tapData(button, action, view) {
    switch (action) {
      case "start":
        return { lang: button.dataset.langArg };
      case "language":
        return { lang: state.msg.lang === "en" ? "cy" : "en" };
      case "large_text":
        return { on: !state.msg.large_text };
      case "key":
        return { digit: button.dataset.digit };
      case "answer":
        return { id: String(field(view, "question.id") || ""), value: button.dataset.value };
      case "staff_override":
        return { reason: button.dataset.reason };
      case "read":
        return { id: String(field(view, "message.id") || "") };
      default:
        return {};
    }
  }

  function listen() {
    // The screen spoken with its own words (the question, the message, the appointment);
    // without a speech engine, the screen's fixed prompt.
    const audio = byId("prompt");
    const fixed = "audio/" + state.msg.lang + "/" + state.msg.screen + ".wav";
    audio.onerror = () => {
      audio.onerror = null;
      audio.src = fixed;
      audio.play().catch(() => {});
    };
    audio.src = "say.wav?seq=" + state.msg.seq;
    audio.play().catch(() => {});
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !state.msg) return;
    const action = button.dataset.action;
    if (action === "listen") {
      listen();
      return;
    }
    if (action === "listen_lost") {
      listenLost(button.dataset.langArg);
      return;
    }
    if (action === "answer" && event.timeStamp < state.answerReadyAt) {
      metrics.bouncedAnswers += 1;
      return;
    }
    state.tapAt = event.timeStamp;
    metrics.taps += 1;
    // The screen the tap was made on: the daemon drops it if that screen has gone.
    const screen = state.msg.screen;
    post("tap", { action, data: tapData(button, action, state.msg.view), screen }).catch((error) => {
      if (error.message !== "409") metrics.tapErrors += 1; // 409: dropped or refused, by design
      state.tapAt = null;
    });
  });

  // No pinch, no long-press menu, no drag: a kiosk, not a web page.
  document.addEventListener("contextmenu", (event) => event.preventDefault());
  document.addEventListener("dragstart", (event) => event.preventDefault());

  // When the daemon cannot be reached (kiosk.service crashed, or stopped on a configuration or
  // device error) "please wait" must not be all a person ever sees. After lost.afterMs with
  // neither the event stream nor the heartbeat getting through, the page says in Welsh and
  // English that this is not their fault and to go to reception (words the server sent with
  // the first event: msg.lost), and it comes back by itself when the daemon answers again.
  // Its words are spoken too, for people who read poorly: the cover's Listen buttons play
  // lost.audio[lang], fetched while the daemon is still here and kept as blob: URLs.
  const lost = { afterMs: 60000, known: false, stream: false, beat: true, timer: null, audio: {} };

  function keepLostAudio() {
    for (const lang of ["cy", "en"]) {
      if (lost.audio[lang]) continue;
      fetch("audio/" + lang + "/lost.wav")
        .then((response) => (response.ok ? response.blob() : null))
        .then((blob) => {
          if (!blob || lost.audio[lang]) return;
          lost.audio[lang] = URL.createObjectURL(blob);
          byId("lost").querySelector("[data-lang-arg=" + lang + "]").hidden = false;
        })
        .catch(() => {}); // no prompt made: the cover stays silent, its words still shown
    }
  }

  function listenLost(lang) {
    const audio = byId("prompt");
    if (!lost.audio[lang]) return;
    audio.onerror = null;
    audio.src = lost.audio[lang];
    audio.play().catch(() => {});
  }

  function learnLost(words) {
    if (!words) return;
    const after = Number(words.after_s);
    if (Number.isFinite(after) && after >= 0) lost.afterMs = after * 1000;
    fill(byId("lost"), { lang: "cy", text: words.cy, alt: words.en, view: {}, derived: {} });
    lost.known = true;
    keepLostAudio();
  }

  function showLost() {
    if (!lost.known) return;
    clearInterval(state.countdown);
    byId("timeout").hidden = true;
    byId("reconnecting").hidden = true;
    byId("lost").hidden = false;
    document.body.dataset.lost = "true";
  }

  // Called whenever the stream or the heartbeat changes: both through is "reached".
  function reachability() {
    if (lost.stream && lost.beat) {
      clearTimeout(lost.timer);
      lost.timer = null;
      byId("lost").hidden = true;
      delete document.body.dataset.lost;
      return;
    }
    if (lost.timer === null) lost.timer = setTimeout(showLost, lost.afterMs);
  }

  let events = null;
  function connect() {
    events = new EventSource("events");
    events.onopen = () => {
      lost.stream = true;
      reachability();
    };
    events.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      learnLost(msg.lost);
      byId("reconnecting").hidden = true;
      lost.stream = true;
      reachability();
      render(msg);
    };
    events.onerror = () => {
      lost.stream = false;
      reachability();
      if (state.msg && byId("lost").hidden) byId("reconnecting").hidden = false;
      // A refused connection is retried by the browser; an answer that is not an event
      // stream closes it for good, so try again from here.
      if (events.readyState === EventSource.CLOSED) setTimeout(connect, HEARTBEAT_MS);
    };
  }

  function beat() {
    post("heartbeat", {}).then(
      () => {
        lost.beat = true;
        reachability();
      },
      () => {
        lost.beat = false;
        reachability();
      },
    );
  }

  setInterval(beat, HEARTBEAT_MS);
  beat();
  connect();
})();
