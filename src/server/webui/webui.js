// edgellm's chat page: conversations in localStorage, replies streamed from the OpenAI API of the
// server that served this page, model text rendered as Markdown through DOM nodes only (never
// innerHTML), so a reply holding <script> or <img onerror> shows as text.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const store = {
    get(key, fallback) {
      try { const v = localStorage.getItem('edgellm.' + key); return v === null ? fallback : JSON.parse(v); }
      catch (e) { return fallback; }
    },
    set(key, value) { try { localStorage.setItem('edgellm.' + key, JSON.stringify(value)); } catch (e) { /* full */ } },
  };

  let apiKey = sessionStorage.getItem('edgellm.key') || '';
  let convs = store.get('convs', []);
  let currentId = store.get('current', null);
  const defaults = { temperature: 0.7, top_p: 0.95, top_k: 0, max_tokens: 512, seed: '' };
  const settings = Object.assign({}, defaults, store.get('settings', {}));
  let modelName = '';
  let running = null;  // AbortController of the reply being streamed

  // ---- HTTP ----
  function headers(hasBody) {
    const h = {};
    if (hasBody) h['Content-Type'] = 'application/json';
    if (apiKey) h.Authorization = 'Bearer ' + apiKey;
    return h;
  }

  function askKey() {
    return new Promise((resolve) => {
      const dlg = $('key-dialog');
      $('key-input').value = '';
      dlg.onclose = () => {
        if (dlg.returnValue === 'ok' && $('key-input').value) {
          apiKey = $('key-input').value;
          sessionStorage.setItem('edgellm.key', apiKey);
          resolve(true);
        } else {
          resolve(false);
        }
      };
      dlg.showModal();
    });
  }

  // fetch with the API key; a 401 asks for the key and tries again.
  async function api(path, opts = {}) {
    for (;;) {
      const r = await fetch(path, Object.assign({}, opts, { headers: headers(!!opts.body) }));
      if (r.status !== 401 || !(await askKey())) return r;
    }
  }

  async function errorText(r) {
    try {
      const j = await r.json();
      if (j && j.error) return typeof j.error === 'string' ? j.error : (j.error.message || JSON.stringify(j.error));
    } catch (e) { /* not JSON */ }
    return 'HTTP ' + r.status;
  }

  // POSTs a streamed chat completion and calls onChunk for every JSON chunk of the event stream.
  async function streamChat(body, onChunk, signal) {
    const r = await api('/v1/chat/completions', { method: 'POST', body: JSON.stringify(body), signal });
    if (!r.ok) throw new Error(await errorText(r));
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        let chunk;
        try { chunk = JSON.parse(data); } catch (e) { continue; }
        if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
        onChunk(chunk);
      }
    }
  }

  // ---- Markdown, rendered with DOM nodes only ----
  const LIST_ITEM = /^\s*([-*+]|\d+[.)])\s+/;
  const FENCE = /^\s*```\s*([\w+#.-]*)\s*$/;
  const HEADING = /^(#{1,6})\s+(.*)$/;

  function inline(text, parent) {
    const re = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[([^\]]+)\]\((https?:\/\/[^\s)]+)\))/g;
    let last = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
      let e;
      if (m[1]) { e = document.createElement('code'); e.textContent = m[1].slice(1, -1); }
      else if (m[2]) { e = document.createElement('strong'); e.textContent = m[2].slice(2, -2); }
      else if (m[3]) { e = document.createElement('em'); e.textContent = m[3].slice(1, -1); }
      else {
        e = document.createElement('a');
        e.textContent = m[5];
        e.href = m[6];  // only http(s): the pattern admits no other scheme
        e.rel = 'noopener noreferrer nofollow';
        e.target = '_blank';
      }
      parent.append(e);
      last = re.lastIndex;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  function renderMarkdown(text, el) {
    el.replaceChildren();
    const lines = text.split('\n');
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(FENCE);
      if (fence) {
        const code = [];
        i++;
        while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) code.push(lines[i++]);
        i++;  // the closing fence (absent while the reply is still streaming)
        const pre = document.createElement('pre');
        const c = document.createElement('code');
        if (fence[1]) c.dataset.lang = fence[1];
        c.textContent = code.join('\n');
        pre.append(c);
        el.append(pre);
        continue;
      }
      if (/^\s*$/.test(line)) { i++; continue; }
      const h = line.match(HEADING);
      if (h) {
        const e = document.createElement('h' + Math.min(6, h[1].length + 2));
        inline(h[2], e);
        el.append(e);
        i++;
        continue;
      }
      if (LIST_ITEM.test(line)) {
        const list = document.createElement(/^\s*\d/.test(line) ? 'ol' : 'ul');
        while (i < lines.length && LIST_ITEM.test(lines[i])) {
          const li = document.createElement('li');
          inline(lines[i].replace(LIST_ITEM, ''), li);
          list.append(li);
          i++;
        }
        el.append(list);
        continue;
      }
      const p = document.createElement('p');
      let first = true;
      while (i < lines.length && !/^\s*$/.test(lines[i]) && !FENCE.test(lines[i]) && !HEADING.test(lines[i]) &&
             !LIST_ITEM.test(lines[i])) {
        if (!first) p.append(document.createElement('br'));
        inline(lines[i++], p);
        first = false;
      }
      el.append(p);
    }
  }

  // ---- conversations ----
  function save() {
    store.set('convs', convs);
    store.set('current', currentId);
  }

  function current() {
    let c = convs.find((x) => x.id === currentId);
    if (!c) {
      c = { id: String(Date.now()) + Math.random().toString(16).slice(2, 6), title: 'New chat', system: '', messages: [] };
      convs.unshift(c);
      currentId = c.id;
      save();
    }
    return c;
  }

  function renderList() {
    const ul = $('conv-list');
    ul.replaceChildren();
    for (const c of convs) {
      const li = document.createElement('li');
      if (c.id === currentId) li.className = 'active';
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'open';
      open.textContent = c.title;
      open.title = c.title;
      open.onclick = () => { if (running) return; currentId = c.id; save(); renderAll(); };
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'delete';
      del.textContent = '×';
      del.title = 'Delete this conversation';
      del.onclick = () => {
        if (running) return;
        convs = convs.filter((x) => x.id !== c.id);
        if (currentId === c.id) currentId = convs.length ? convs[0].id : null;
        save();
        renderAll();
      };
      li.append(open, del);
      ul.append(li);
    }
  }

  function statsText(s) {
    if (!s) return '';
    const parts = [];
    if (s.tokens != null) parts.push(s.tokens + ' tokens');
    if (s.tps != null) parts.push(s.tps.toFixed(1) + ' tok/s');
    if (s.ttft_ms != null) parts.push('TTFT ' + Math.round(s.ttft_ms) + ' ms');
    if (s.finish) parts.push(s.finish === 'stopped' ? 'stopped by you' : 'finish: ' + s.finish);
    return parts.join(' · ');
  }

  function messageView(m) {
    const div = document.createElement('div');
    div.className = 'msg ' + m.role;
    const role = document.createElement('div');
    role.className = 'role';
    role.textContent = m.role === 'user' ? 'You' : (modelName || 'assistant');
    const content = document.createElement('div');
    content.className = 'content';
    const stats = document.createElement('div');
    stats.className = 'stats';
    const err = document.createElement('div');
    err.className = 'error';
    div.append(role, content, stats, err);
    fillMessage(div, m);
    return div;
  }

  function fillMessage(div, m) {
    const content = div.querySelector('.content');
    if (m.role === 'user') content.textContent = m.content;
    else renderMarkdown(m.content, content);
    div.querySelector('.stats').textContent = statsText(m.stats);
    div.querySelector('.error').textContent = m.error ? 'Error: ' + m.error : '';
  }

  function renderConversation() {
    const c = current();
    const box = $('messages');
    box.replaceChildren();
    if (!c.messages.length) {
      const e = document.createElement('div');
      e.id = 'empty';
      e.textContent = 'Send a message to start.';
      box.append(e);
    }
    for (const m of c.messages) box.append(messageView(m));
    box.scrollTop = box.scrollHeight;
    $('system').value = c.system;
  }

  function renderAll() {
    renderList();
    renderConversation();
  }

  function setRunning(on) {
    $('send').disabled = on;
    $('stop').disabled = !on;
    $('status').textContent = on ? 'generating…' : '';
  }

  async function send() {
    const text = $('input').value;
    if (!text.trim() || running) return;
    const conv = current();
    conv.messages.push({ role: 'user', content: text });
    if (conv.title === 'New chat') conv.title = text.trim().slice(0, 48);
    const reply = { role: 'assistant', content: '', stats: null };
    conv.messages.push(reply);
    $('input').value = '';
    save();
    renderAll();
    const box = $('messages');
    const view = box.lastElementChild;

    const messages = [];
    if (conv.system.trim()) messages.push({ role: 'system', content: conv.system });
    for (const m of conv.messages.slice(0, -1)) if (!m.error || m.content) messages.push({ role: m.role, content: m.content });
    const body = {
      model: modelName, messages, stream: true, stream_options: { include_usage: true },
      temperature: Number(settings.temperature), top_p: Number(settings.top_p), max_tokens: Number(settings.max_tokens),
    };
    if (Number(settings.top_k) > 0) body.top_k = Number(settings.top_k);
    if (settings.seed !== '' && settings.seed !== null) body.seed = Number(settings.seed);

    running = new AbortController();
    setRunning(true);
    const t0 = performance.now();
    let tFirst = null;
    let tLast = null;
    let usage = null;
    let finish = null;
    let pieces = 0;
    let pending = false;
    try {
      await streamChat(body, (chunk) => {
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices && chunk.choices[0];
        if (!choice) return;
        if (choice.delta && choice.delta.content) {
          tLast = performance.now();
          if (tFirst === null) tFirst = tLast;
          reply.content += choice.delta.content;
          pieces++;
          if (!pending) {
            pending = true;
            requestAnimationFrame(() => {
              pending = false;
              fillMessage(view, reply);
              box.scrollTop = box.scrollHeight;
            });
          }
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }, running.signal);
    } catch (e) {
      if (e.name === 'AbortError') finish = 'stopped';
      else reply.error = String(e.message || e);
    }
    const n = usage ? usage.completion_tokens : pieces;
    reply.stats = {
      tokens: n,
      ttft_ms: tFirst === null ? null : tFirst - t0,
      // decode speed: tokens after the first over the time between the first and the last
      tps: tFirst !== null && n > 1 && tLast > tFirst ? (n - 1) / ((tLast - tFirst) / 1000) : null,
      finish,
    };
    running = null;
    setRunning(false);
    save();
    fillMessage(view, reply);
    renderList();
    box.scrollTop = box.scrollHeight;
  }

  // ---- live metrics ----
  let lastTokens = null;
  let lastTime = null;
  async function pollMetrics() {
    if (document.hidden) return;
    try {
      const r = await fetch('/metrics', { headers: headers(false) });
      if (!r.ok) return;
      const v = {};
      for (const line of (await r.text()).split('\n')) {
        const m = line.match(/^(edgellm_\w+)\s+(\S+)$/);
        if (m) v[m[1]] = Number(m[2]);
      }
      $('m-running').textContent = v.edgellm_running_sequences ?? '–';
      $('m-queued').textContent = v.edgellm_queue_depth ?? '–';
      $('m-kv').textContent = v.edgellm_kv_blocks_used != null ? v.edgellm_kv_blocks_used + ' / ' + v.edgellm_kv_blocks_total : '–';
      const now = performance.now();
      const tokens = v.edgellm_generated_tokens_total;
      if (tokens != null && lastTokens != null && now > lastTime)
        $('m-tps').textContent = ((tokens - lastTokens) / ((now - lastTime) / 1000)).toFixed(1);
      lastTokens = tokens;
      lastTime = now;
    } catch (e) { /* server gone: keep the last figures */ }
  }

  async function loadModel() {
    try {
      const r = await api('/v1/models');
      if (!r.ok) { $('model').textContent = 'model: ' + (await errorText(r)); return; }
      const j = await r.json();
      modelName = (j.data && j.data[0] && j.data[0].id) || '';
      $('model').textContent = modelName || '(no model)';
      document.title = (modelName ? modelName + ' – ' : '') + 'edgellm chat';
      renderConversation();
    } catch (e) {
      $('model').textContent = 'server unreachable';
    }
  }

  // ---- wiring ----
  for (const k of Object.keys(defaults)) {
    const input = $(k);
    input.value = settings[k];
    input.onchange = () => { settings[k] = input.value; store.set('settings', settings); };
  }
  $('system').onchange = () => { current().system = $('system').value; save(); };
  $('toggle-settings').onclick = () => {
    const open = $('settings').classList.toggle('open');
    $('toggle-settings').setAttribute('aria-expanded', String(open));
  };
  $('new-chat').onclick = () => {
    if (running) return;
    currentId = null;
    current();
    renderAll();
    $('input').focus();
  };
  $('composer').onsubmit = (e) => { e.preventDefault(); send(); };
  $('input').onkeydown = (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  };
  $('stop').onclick = () => { if (running) running.abort(); };

  window.edgellmWebui = { renderMarkdown };  // for tests and the curious
  renderAll();
  loadModel();
  pollMetrics();
  setInterval(pollMetrics, 2000);
})();
