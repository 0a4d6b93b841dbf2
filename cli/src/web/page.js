'use strict';
// The page of `mgrctl web`: it only renders what the server streams and
// posts what the user asks for; every decision (drawing, checking, errors)
// is the server's, so that the page shows what mgrctl would print.

const token = new URLSearchParams(location.search).get('token') || '';
const api = (path) => path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
const $ = (id) => document.getElementById(id);
// Lines of output the page keeps (the rest is in `mgrctl logs`).
const MAX_LINES = 20000;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

let current = null;
let viewSource = null;
let outputSource = null;
let view = null;
let lines = [];
const side = new Set();

// The group: members and runs.
const stateSource = new EventSource(api('/api/state'));
stateSource.onopen = () => { $('status').textContent = '● connected'; };
stateSource.onerror = () => { $('status').textContent = 'lost mgrctl web: retrying…'; };
stateSource.addEventListener('state', (e) => renderGroup(JSON.parse(e.data)));

function renderGroup(state) {
  $('group-error').textContent = state.error || '';
  if (state.error) return;
  const members = $('members').tBodies[0];
  members.replaceChildren(...state.members.map((m) => el('tr', { 'data-member': m.name },
    el('td', {}, m.name + (m.me ? ' (this one)' : '')), el('td', {}, m.address),
    el('td', { class: 'state state-' + m.state }, m.state), el('td', {}, m.instances))));
  const runs = $('runs').tBodies[0];
  runs.replaceChildren(...state.runs.map((r) => {
    const counts = {};
    for (const i of r.instances) counts[i.state] = (counts[i.state] || 0) + 1;
    const summary = Object.entries(counts).map(([s, n]) => n + ' ' + s).join(', ');
    const each = el('ul', { class: 'instances' }, ...r.instances.map((i) => el('li', {},
      i.name + ' · ' + i.member + ' · ' + i.address + ' · ', el('span', { class: 'state-' + i.state }, i.state),
      i.restarts ? ' · ' + i.restarts + (i.restarts === 1 ? ' restart' : ' restarts') : '')));
    return el('tr', { 'data-run': r.name },
      el('td', {}, el('a', { href: '#run=' + encodeURIComponent(r.name) }, r.name)),
      el('td', {}, r.module), el('td', {}, summary, each));
  }));
  $('no-runs').hidden = state.runs.length > 0;
}

// One run: its view and output streams, open while it is shown.
function route() {
  const m = location.hash.match(/^#run=(.+)$/);
  const run = m ? decodeURIComponent(m[1]) : null;
  if (run === current) return;
  if (viewSource) viewSource.close();
  if (outputSource) outputSource.close();
  viewSource = outputSource = view = null;
  current = run;
  side.clear();
  $('group').hidden = !!run;
  $('run').hidden = !run;
  if (!run) return;
  $('run-title').textContent = 'run ' + run;
  $('diagram').replaceChildren();
  $('control-result').textContent = '';
  lines = [];
  renderOutput();
  viewSource = new EventSource(api('/api/runs/' + encodeURIComponent(run) + '/view'));
  viewSource.addEventListener('view', (e) => renderView(JSON.parse(e.data)));
  openOutput(run);
}
window.addEventListener('hashchange', route);

// The output of a run's instances; its stream ends with the run, and is
// opened again when the run is restarted.
function openOutput(run) {
  outputSource = new EventSource(api('/api/runs/' + encodeURIComponent(run) + '/output'));
  // After a reconnection the server sends the output again from its start.
  outputSource.onopen = () => { lines = []; renderOutput(); };
  outputSource.addEventListener('lines', (e) => {
    lines.push(...JSON.parse(e.data));
    if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
    renderOutput();
  });
  outputSource.addEventListener('end', () => outputSource.close());
  outputSource.addEventListener('failed', (e) => {
    $('run-error').textContent = JSON.parse(e.data).error;
    outputSource.close();
  });
}

function renderView(v) {
  $('run-error').textContent = v.error || '';
  if (v.error) return;
  view = v;
  if (!v.ended && outputSource && outputSource.readyState === EventSource.CLOSED) openOutput(current);
  const status = v.ended ? 'ended' : v.quiet ? 'quiet for 5 s' : 'running';
  $('run-summary').textContent = v.module + ' · ' + v.instances.length + ' instances · ' + v.events + ' events · ' + status
    + (v.missing.length ? ' · events of ' + v.missing.join(', ') + ' missing' : '');
  $('faults').textContent = v.faults === null ? 'none (the run has ended)' : (v.faults || 'none');

  $('instances').tBodies[0].replaceChildren(...v.instances.map((i) => el('tr', { 'data-instance': i.name },
    el('td', {}, i.name + (i.role ? ' (' + i.role + ')' : '')), el('td', {}, i.member), el('td', {}, i.address),
    el('td', { class: 'state state-' + i.state, title: i.detail || '' }, i.state), el('td', {}, i.restarts),
    el('td', {}, ...['stop', 'kill', 'pause', 'resume', 'restart'].map((kind) =>
      el('button', { type: 'button', 'data-kind': kind, onclick: () => signal(current + '/' + i.name, kind) }, kind))))));

  keepChoice($('send-to'), [['', 'every instance'], ...v.roles.map((r) => ['role:' + r, 'role ' + r]),
    ...v.instances.map((i) => [i.name, i.name])]);
  keepChoice($('out-filter'), [['', 'all'], ...v.instances.map((i) => [i.name, i.name])]);
  $('sides').replaceChildren(...v.instances.map((i) => el('label', {},
    el('input', { type: 'checkbox', name: 'side', value: i.name, ...(side.has(i.name) ? { checked: '' } : {}),
      onchange: (e) => { if (e.target.checked) side.add(i.name); else side.delete(i.name); } }), i.name)));

  // The diagram grows to the right: follow its end unless the user scrolled back.
  const box = $('diagram');
  const atEnd = box.scrollLeft + box.clientWidth >= box.scrollWidth - 30;
  box.innerHTML = v.svg;
  if (atEnd) box.scrollLeft = box.scrollWidth;

  $('verdicts').replaceChildren(
    ...v.verdicts.map((c) => el('li', { class: 'verdict-' + c.verdict, 'data-property': c.property, title: c.statement },
      c.property.padEnd(6) + ' ' + c.verdict.padEnd(9) + ' ' + c.statement.split(':')[0]
        + ' [' + c.processes.join(',') + ']' + (c.detail ? ': ' + c.detail : ''))),
    ...v.notes.map((n) => el('li', { class: 'verdict-undecided' }, n)));
}

// Replaces a select's options, keeping the chosen one when it is still there.
function keepChoice(select, options) {
  const chosen = select.value;
  select.replaceChildren(...options.map(([value, text]) => el('option', { value }, text)));
  if (options.some(([value]) => value === chosen)) select.value = chosen;
}

function renderOutput() {
  const who = $('out-filter').value;
  const what = $('out-search').value.toLowerCase();
  const shown = lines.filter((l) => (!who || l.instance === who) && (!what || l.text.toLowerCase().includes(what)));
  const out = $('output');
  const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 30;
  out.textContent = shown.map((l) => l.instance + (l.stream === 'mgr' ? ' # ' : ' | ') + l.text).join('\n');
  if (atEnd) out.scrollTop = out.scrollHeight;
  $('out-count').textContent = shown.length + ' of ' + lines.length + ' lines';
}
$('out-filter').addEventListener('change', renderOutput);
$('out-search').addEventListener('input', renderOutput);

// Hover shows a mark's <title> as a tooltip; a click keeps it below.
$('diagram').addEventListener('click', (e) => {
  for (let n = e.target; n && n.id !== 'diagram' && n.tagName !== 'svg'; n = n.parentNode) {
    const title = Array.from(n.children || []).find((c) => c.tagName === 'title');
    if (title) { $('details').textContent = title.textContent; return; }
  }
});

// Controls: each is one RPC behind the server, with mgrctl's errors.
async function post(path, body) {
  const result = $('control-result');
  try {
    const response = await fetch(api(path), {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    const text = await response.text();
    let answer;
    try { answer = JSON.parse(text); } catch { answer = { error: text.trim() || response.statusText }; }
    result.classList.toggle('failed', !response.ok);
    result.textContent = response.ok ? describe(answer) : answer.error;
    return response.ok;
  } catch (err) {
    result.classList.add('failed');
    result.textContent = 'cannot reach mgrctl web: ' + err;
    return false;
  }
}

function describe(answer) {
  if (answer.instances) return answer.instances.join('\n') || 'nothing to do';
  if ('faults' in answer) return current + ': faults ' + (answer.faults || 'none') + ' (told ' + answer.told.length + ' instances)';
  if (answer.delivered) return 'sent to ' + answer.delivered.join(', ');
  return 'done';
}

function signal(target, kind) { return post('/api/signal', { target, kind }); }

$('send-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (await post('/api/send', { run: current, to: $('send-to').value, line: $('send-line').value })) $('send-line').value = '';
});

$('fault-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const number = (id) => ($(id).value === '' ? null : Number($(id).value));
  post('/api/fault', { run: current, loss: number('loss'), dup: number('dup'), delay: $('delay').value || null });
});

$('cut').addEventListener('click', () => {
  const names = (view ? view.instances : []).map((i) => i.name);
  const one = names.filter((n) => side.has(n));
  const other = names.filter((n) => !side.has(n));
  if (!one.length || !other.length) {
    $('control-result').classList.add('failed');
    $('control-result').textContent = 'choose the instances of one side: a partition needs two non-empty sides';
    return;
  }
  post('/api/fault', { run: current, partition: one.join(',') + '/' + other.join(',') });
});
$('heal').addEventListener('click', () => post('/api/fault', { run: current, heal: true }));

route();
