// benchop monitor: live dashboard. Everything updates from the server-sent `overview` events of
// api/stream; the task list is re-queried when an event says the state changed. No polling loop,
// nothing loaded from outside this server.
'use strict';

const READ_ONLY = document.body.dataset.readOnly === 'true';
const TOKEN = new URLSearchParams(location.search).get('access_token');
const STATES = ['pending', 'received', 'started', 'succeeded', 'failed', 'revoked', 'dead_lettered'];
const $ = (sel) => document.querySelector(sel);

function url(path, params) {
  const p = new URLSearchParams(params || {});
  if (TOKEN) p.set('access_token', TOKEN);
  const q = p.toString();
  return q ? `${path}?${q}` : path;
}

async function api(path, params, init) {
  const r = await fetch(url(path, params), init);
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && body.message) || r.statusText);
  return body;
}

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
const short = (id) => (id ? esc(String(id).slice(0, 8)) : '');
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '');
function ago(ms, now) {
  if (!ms) return '';
  const s = Math.max(0, (now - ms) / 1000);
  return s < 60 ? `${s.toFixed(0)} s ago` : s < 3600 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
}
function dur(ms) {
  if (ms == null) return '';
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60000).toFixed(1)} min`;
}

// ------------------------------------------------------------------------------------------ controls

async function control(path, body, what) {
  if (READ_ONLY) return;
  try {
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body || {}) };
    await api(path, null, init);
    flash(`${what}: sent`);
  } catch (e) {
    flash(`${what}: ${e.message}`);
  }
}
function flash(text) {
  const c = $('#conn');
  const was = c.textContent;
  c.textContent = text;
  setTimeout(() => { c.textContent = was; }, 3000);
}

document.addEventListener('click', (ev) => {
  const b = ev.target.closest('[data-act]');
  if (!b) return;
  const { act, id } = b.dataset;
  if (act === 'task') return showTask(id);
  if (act === 'job') return showJob(id);
  if (act === 'worker') return showWorker(id);
  if (act === 'revoke') return control(`api/tasks/${id}/revoke`, { terminate: false }, 'revoke');
  if (act === 'terminate') return control(`api/tasks/${id}/revoke`, { terminate: true }, 'terminate');
  if (act === 'retry') return control(`api/tasks/${id}/retry`, null, 'retry');
  if (act === 'cancel') return control(`api/jobs/${id}/cancel`, null, 'cancel job');
  if (act === 'shutdown' && confirm(`Shut down ${id}?`)) return control(`api/workers/${encodeURIComponent(id)}/shutdown`, null, 'shutdown');
  if (act === 'concurrency') {
    const n = parseInt(prompt(`Concurrency for ${id}`, b.dataset.current || '1'), 10);
    if (n > 0) control(`api/workers/${encodeURIComponent(id)}/concurrency`, { concurrency: n }, 'concurrency');
  }
});

// ------------------------------------------------------------------------------------------- views

function renderCounts(o) {
  const online = o.workers.filter((w) => w.status === 'online').length;
  const c = o.task_counts;
  $('#counts').innerHTML = [
    ['workers online', online], ['running', (c.received || 0) + (c.started || 0)], ['succeeded', c.succeeded || 0],
    ['failed', (c.failed || 0) + (c.dead_lettered || 0) + (c.revoked || 0)], ['retained', o.retained],
    ['events', Object.values(o.event_counts).reduce((a, b) => a + b, 0)],
  ].map(([k, v]) => `<span>${k}: <b>${esc(v)}</b></span>`).join('');
}

function renderWorkers(o) {
  $('#workers-table tbody').innerHTML = o.workers.map((w) => `<tr data-worker="${esc(w.name)}">
    <td><a class="link" data-act="worker" data-id="${esc(w.name)}">${esc(w.name)}</a></td>
    <td class="status status-${esc(w.status)}">${esc(w.status)}</td><td>${w.active}</td><td>${w.processed}</td>
    <td>${w.succeeded}</td><td>${w.failed}</td><td>${w.retried}</td><td>${w.concurrency}</td>
    <td>${w.load == null ? '' : w.load.toFixed(2)}</td><td>${ago(w.last_heartbeat_ms, o.now_ms)}</td>
    <td class="ctl"><button data-act="concurrency" data-id="${esc(w.name)}" data-current="${w.concurrency}">concurrency</button>
      <button data-act="shutdown" data-id="${esc(w.name)}">shut down</button></td></tr>`).join('');
}

function renderJobs(o) {
  $('#jobs-table tbody').innerHTML = o.jobs.map((j) => {
    const done = j.succeeded + j.failed;
    const pct = j.tasks ? Math.round((100 * done) / j.tasks) : 0;
    return `<tr data-job="${esc(j.job_id)}"><td class="mono"><a class="link" data-act="job" data-id="${esc(j.job_id)}">${short(j.job_id)}</a></td>
      <td>${esc(j.problem)}</td><td class="status status-${esc(j.status)}">${esc(j.status)}</td>
      <td><span class="bar"><i style="width:${pct}%"></i></span> ${done}/${j.tasks}</td><td>${j.succeeded}</td><td>${j.failed}</td>
      <td>${time(j.created_ms)}</td><td class="ctl">${j.status === 'running' ? `<button data-act="cancel" data-id="${esc(j.job_id)}">cancel</button>` : ''}</td></tr>`;
  }).join('');
}

function renderQueues(o) {
  $('#queues-table tbody').innerHTML = o.queues.map((q) => `<tr data-queue="${esc(q.name)}"><td>${esc(q.name)}</td><td>${q.ready}</td>
    <td>${q.unacked ?? '–'}</td><td>${q.consumers}</td><td>${q.publish_rate == null ? '–' : q.publish_rate.toFixed(1)}</td>
    <td>${q.deliver_rate == null ? '–' : q.deliver_rate.toFixed(1)}</td><td>${q.oldest_age_ms == null ? '' : dur(q.oldest_age_ms)}</td>
    <td>${esc(q.source)}</td></tr>`).join('');
}

function taskControls(t) {
  const live = ['pending', 'received', 'started'].includes(t.state);
  const retry = ['failed', 'dead_lettered', 'revoked'].includes(t.state);
  return (live ? `<button data-act="revoke" data-id="${t.task_id}">revoke</button><button data-act="terminate" data-id="${t.task_id}">terminate</button>` : '')
    + (retry ? `<button data-act="retry" data-id="${t.task_id}">retry</button>` : '');
}

function taskRow(t) {
  return `<tr data-task="${esc(t.task_id)}"><td class="mono"><a class="link" data-act="task" data-id="${esc(t.task_id)}">${short(t.task_id)}</a></td>
    <td class="state state-${esc(t.state)}">${esc(t.state)}</td><td>${esc(t.method)}</td><td>${esc(t.problem)}</td>
    <td>${esc(t.worker)}</td><td class="mono">${t.job_id ? `<a class="link" data-act="job" data-id="${esc(t.job_id)}">${short(t.job_id)}</a>` : ''}</td>
    <td>${t.attempts}</td><td>${dur(t.runtime_ms)}</td><td>${time(t.updated_ms)}</td><td class="ctl">${taskControls(t)}</td></tr>`;
}

// Tasks: the query lives in the form; re-run on submit, paging, and (throttled) on every change pushed.
const taskQuery = { page: 1 };
let taskLoading = false;
let taskStale = false;
function readFilter() {
  const f = $('#task-filter');
  const states = [...f.querySelectorAll('input[name=state]:checked')].map((c) => c.value);
  const p = { page: taskQuery.page, per_page: 50, sort: f.sort.value, order: f.order.value };
  if (states.length) p.state = states.join(',');
  if (f.q.value.trim()) p.q = f.q.value.trim();
  if (f.from.value) p.from_ms = new Date(f.from.value).getTime();
  if (f.to.value) p.to_ms = new Date(f.to.value).getTime();
  return p;
}
async function loadTasks() {
  if (taskLoading) { taskStale = true; return; }
  taskLoading = true;
  try {
    const page = await api('api/tasks', readFilter());
    $('#tasks-table tbody').innerHTML = page.tasks.map(taskRow).join('');
    const pages = Math.max(1, Math.ceil(page.total / page.per_page));
    $('#page-info').textContent = `page ${page.page} of ${pages} (${page.total} tasks)`;
    $('#prev').disabled = page.page <= 1;
    $('#next').disabled = page.page >= pages;
  } catch (e) {
    $('#page-info').textContent = e.message;
  } finally {
    taskLoading = false;
    if (taskStale) { taskStale = false; setTimeout(loadTasks, 300); }
  }
}
$('#state-filters').innerHTML = STATES.map((s) => `<label><input type="checkbox" name="state" value="${s}"> ${s}</label>`).join(' ');
$('#task-filter').addEventListener('submit', (e) => { e.preventDefault(); taskQuery.page = 1; loadTasks(); });
$('#prev').addEventListener('click', () => { taskQuery.page = Math.max(1, taskQuery.page - 1); loadTasks(); });
$('#next').addEventListener('click', () => { taskQuery.page += 1; loadTasks(); });

async function loadDead() {
  try {
    const list = await api('api/queues/dead');
    $('#dead-table tbody').innerHTML = list.map((d) => `<tr><td class="mono">${d.task_id ? `<a class="link" data-act="task" data-id="${esc(d.task_id)}">${short(d.task_id)}</a>` : ''}</td>
      <td class="mono">${short(d.job_id)}</td><td>${esc(d.method)}</td><td>${esc(d.reason)}</td><td>${esc(d.queue)}</td><td>${time(d.died_ms)}</td>
      <td class="ctl">${d.task_id ? `<button data-act="retry" data-id="${esc(d.task_id)}">retry</button>` : ''}</td></tr>`).join('')
      || '<tr><td colspan="7">empty</td></tr>';
  } catch (e) {
    $('#dead-table tbody').innerHTML = `<tr><td colspan="7">${esc(e.message)}</td></tr>`;
  }
}
$('#load-dead').addEventListener('click', loadDead);

// ------------------------------------------------------------------------------------------ details

function dl(obj) {
  return `<dl>${Object.entries(obj).filter(([, v]) => v != null && v !== '').map(([k, v]) =>
    `<dt>${esc(k)}</dt><dd>${typeof v === 'object' ? `<code>${esc(JSON.stringify(v))}</code>` : esc(v)}</dd>`).join('')}</dl>`;
}
function openDetail(html) {
  $('#detail-body').innerHTML = html;
  if (!$('#detail').open) $('#detail').showModal();
}
async function showTask(id) {
  try {
    const d = await api(`api/tasks/${id}`);
    const t = d.task;
    const r = d.result || {};
    openDetail(`<h3>Task <span class="mono">${esc(t.task_id)}</span></h3>
      ${dl({ state: t.state, method: t.method, problem: t.problem, worker: t.worker, job: t.job_id, attempts: t.attempts,
        received: time(t.received_ms), started: time(t.started_ms), finished: time(t.finished_ms), runtime: dur(t.runtime_ms), error: t.error })}
      <h4>Result</h4>${d.result ? dl({ prices: r.values, std_errors: r.std_errors, relerr: r.relerr, standing: r.standing, level: r.level,
        setting: r.setting, time: r.time, threads: r.threads, reason: r.reason }) : '<p>not available (baas did not answer or no result yet)</p>'}
      ${d.baas_task ? `<h4>baas</h4>${dl(d.baas_task)}` : ''}
      ${d.problem ? `<h4>Parameters</h4>${dl(d.problem.parameters || {})}` : ''}
      <h4>Timeline</h4><table><tbody>${d.timeline.map((e) => `<tr><td>${time(e.ts_ms)}</td><td>${esc(e.type)}</td>
        <td class="mono">${esc(JSON.stringify(e.event))}</td></tr>`).join('')}</tbody></table>
      <p class="ctl">${taskControls(t)}</p>`);
  } catch (e) { openDetail(`<p>${esc(e.message)}</p>`); }
}
let openJob = null;
async function showJob(id) {
  openJob = id;
  try {
    const d = await api(`api/jobs/${id}`);
    const j = d.job;
    const ranking = Array.isArray(d.ranking) ? d.ranking : [];
    openDetail(`<h3>Job <span class="mono">${esc(j.job_id)}</span></h3>
      ${dl({ problem: j.problem, status: j.status, tasks: j.tasks, succeeded: j.succeeded, failed: j.failed, created: time(j.created_ms), finished: time(j.finished_ms) })}
      <h4>Ranking (${esc(d.ranking_source)})</h4><table id="ranking"><thead><tr><th>rank</th><th>method</th><th>time</th><th>relerr</th><th>worker</th></tr></thead>
      <tbody>${ranking.map((e) => `<tr><td>${esc(e.rank ?? '–')}</td><td>${esc(e.method)}</td>
        <td>${e.time ? `${(e.time.median_s * 1000).toFixed(2)} ms` : dur(e.runtime_ms)}</td><td>${e.relerr == null ? '' : Number(e.relerr).toExponential(2)}</td>
        <td>${esc(e.worker)}</td></tr>`).join('')}</tbody></table>
      <h4>Tasks</h4><table><tbody>${d.tasks.map(taskRow).join('')}</tbody></table>`);
  } catch (e) { openDetail(`<p>${esc(e.message)}</p>`); }
}
async function showWorker(name) {
  try {
    const d = await api(`api/workers/${encodeURIComponent(name)}`);
    openDetail(`<h3>Worker ${esc(name)}</h3>${dl(d.worker)}<h4>Recent tasks</h4><table><tbody>${d.tasks.tasks.map(taskRow).join('')}</tbody></table>`);
  } catch (e) { openDetail(`<p>${esc(e.message)}</p>`); }
}
$('#detail').addEventListener('close', () => { openJob = null; });

// ------------------------------------------------------------------------------------------- charts

const COLORS = ['#1a7f37', '#cf222e', '#0969da', '#9a6700', '#8250df', '#bf3989', '#1b7c83', '#6e7781'];

function axes(ctx, w, h, max, label) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = '#d0d7de';
  ctx.fillStyle = '#6e7781';
  ctx.font = '10px sans-serif';
  for (let i = 0; i <= 4; i++) {
    const y = 10 + ((h - 30) * i) / 4;
    ctx.beginPath(); ctx.moveTo(40, y); ctx.lineTo(w - 5, y); ctx.stroke();
    ctx.fillText(label((max * (4 - i)) / 4), 2, y + 3);
  }
}

function lineChart(canvas, xs, series) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  const max = Math.max(1, ...series.flatMap((s) => s.ys));
  axes(ctx, w, h, max, (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)));
  if (xs.length < 2) return;
  const x0 = xs[0], x1 = xs[xs.length - 1];
  const px = (x) => 40 + ((w - 45) * (x - x0)) / Math.max(1, x1 - x0);
  const py = (y) => 10 + (h - 30) * (1 - y / max);
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color || COLORS[k % COLORS.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.ys.forEach((y, i) => (i ? ctx.lineTo(px(xs[i]), py(y)) : ctx.moveTo(px(xs[i]), py(y))));
    ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(s.name, 45 + k * 90, h - 5);
  });
}

function barChart(canvas, groups) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  const max = Math.max(1, ...groups.flatMap((g) => g.values));
  axes(ctx, w, h, max, (v) => v.toFixed(0));
  const gw = (w - 45) / Math.max(1, groups.length);
  const py = (y) => 10 + (h - 30) * (1 - y / max);
  groups.forEach((g, i) => {
    g.values.forEach((v, k) => {
      ctx.fillStyle = COLORS[k];
      const bw = (gw - 8) / g.values.length;
      ctx.fillRect(45 + i * gw + k * bw, py(v), bw - 1, h - 20 - py(v));
    });
    ctx.fillStyle = '#1f2328';
    ctx.fillText(g.name, 45 + i * gw, h - 5, gw - 4);
  });
}

function renderCharts(o) {
  const t = o.throughput;
  lineChart($('#chart-throughput'), t.map((b) => b.t), [
    { name: 'received', ys: t.map((b) => b.received), color: '#0969da' },
    { name: 'succeeded', ys: t.map((b) => b.succeeded), color: '#1a7f37' },
    { name: 'failed', ys: t.map((b) => b.failed), color: '#cf222e' },
  ]);
  barChart($('#chart-runtime'), Object.entries(o.runtimes).map(([m, p]) => ({ name: m, values: p.slice(0, 3) })));
  const d = o.depth;
  lineChart($('#chart-depth'), d.map((s) => s.t), [
    { name: 'ready', ys: d.map((s) => s.tasks_ready), color: '#0969da' },
    { name: 'unacked', ys: d.map((s) => s.tasks_unacked), color: '#9a6700' },
    { name: 'dead', ys: d.map((s) => s.dead), color: '#cf222e' },
  ]);
}

// --------------------------------------------------------------------------------------------- live

function render(o) {
  $('#ro').hidden = !o.read_only;
  renderCounts(o);
  renderWorkers(o);
  renderJobs(o);
  renderQueues(o);
  renderCharts(o);
  loadTasks();
  if (openJob) showJob(openJob);
}

function connect() {
  const es = new EventSource(url('api/stream'));
  es.addEventListener('overview', (ev) => {
    $('#conn').textContent = 'live';
    $('#conn').classList.add('live');
    render(JSON.parse(ev.data));
  });
  es.onerror = () => {
    $('#conn').textContent = 'reconnecting…';
    $('#conn').classList.remove('live');
  };
}

if (READ_ONLY) $('#ro').hidden = false;
connect();
loadDead();
