// Lode dashboard. Vanilla JavaScript, no dependencies, no external requests.
// Data: GET /v1/dashboard (a snapshot), pushed by GET /v1/events (Server-Sent
// Events; polling when the stream is unavailable), plus the explorer and
// earnings endpoints, and GET /v1/validators on a replicated chain. Token amounts arrive as base-unit decimal strings and are
// formatted with BigInt; the DOM is built with createElement/textContent only.
'use strict';

(function () {
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const POLL_MS = 2000;
  const RETRY_SSE_MS = 15000;
  const VALIDATORS_MS = 2000;

  const state = {
    snap: null,
    view: 'overview',
    arg: null,
    decimals: 18,
    symbol: 'LODE',
    blocksBefore: null,     // null: newest page
    blocksNext: null,
    blocksHeight: -1,       // ledger height the block list was fetched at
    earningsHeight: -1,
    selectedBlock: null,
    replicated: null,       // null: not known yet; false: this gateway seals the blocks
    validatorsAt: 0,        // when /v1/validators was last asked (ms)
    validatorsBusy: false,
  };

  // ------------------------------------------------------------ DOM helpers

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    setProps(el, props);
    append(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    append(el, children);
    return el;
  }

  function setProps(el, props) {
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'title') el.title = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k.startsWith('data-')) el.setAttribute(k, String(v));
      else el[k] = v;
    }
  }

  function append(el, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  const $ = (id) => document.getElementById(id);

  function fill(tbody, rows, cols, emptyText) {
    tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { class: 'empty', colSpan: cols, text: emptyText }))]));
  }

  // ------------------------------------------------------------ formatting

  function big(x) {
    try { return BigInt(x || '0'); } catch (_) { return 0n; }
  }

  function groupDigits(str) {
    return str.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  // Base units → "1,234.5678 LODE" (truncated, never rounded up).
  function tokens(baseUnits, digits = 4, unit = true) {
    const v = big(baseUnits);
    const one = 10n ** BigInt(state.decimals);
    const whole = v / one;
    const frac = v % one;
    let out = groupDigits(whole.toString());
    const all = frac.toString().padStart(state.decimals, '0');
    if (whole === 0n && frac > 0n && !/[1-9]/.test(all.slice(0, digits))) {
      // A small amount: three significant digits, never shown as 0.
      const first = all.search(/[1-9]/);
      out += '.' + all.slice(0, first + 3).replace(/0+$/, '');
    } else if (digits > 0) {
      const f = all.slice(0, digits).replace(/0+$/, '');
      if (f) out += '.' + f;
    }
    return unit ? out + ' ' + state.symbol : out;
  }

  // Base units → a float in tokens, for chart geometry only.
  function tokenFloat(baseUnits) {
    const v = big(baseUnits);
    const scale = 10n ** BigInt(Math.max(state.decimals - 6, 0));
    return Number(v / scale) / 1e6;
  }

  function count(n) { return groupDigits(String(n ?? 0)); }

  function short(id, n = 10) {
    if (!id) return '';
    const str = String(id);
    if (str.startsWith('did:key:')) return 'did:key:' + str.slice(8, 8 + n) + '…';
    return str.length > n + 2 ? str.slice(0, n) + '…' : str;
  }

  function ppm(p) {
    const v = Number(p || 0);
    return (Math.floor(v / 100) / 100).toFixed(2) + '%';
  }

  function speed(fuelPerS) {
    const v = Number(fuelPerS || 0);
    if (v >= 1e9) return (v / 1e9).toFixed(2) + ' Gfuel/s';
    if (v >= 1e6) return (v / 1e6).toFixed(1) + ' Mfuel/s';
    if (v >= 1e3) return (v / 1e3).toFixed(1) + ' kfuel/s';
    return v + ' fuel/s';
  }

  function time(ms) {
    if (!ms) return '';
    const d = new Date(Number(ms));
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function dateTime(ms) {
    if (!ms) return '';
    return new Date(Number(ms)).toLocaleString();
  }

  function duration(ms) {
    let sec = Math.max(0, Math.round(ms / 1000));
    const d = Math.floor(sec / 86400); sec -= d * 86400;
    const hh = Math.floor(sec / 3600); sec -= hh * 3600;
    const mm = Math.floor(sec / 60); sec -= mm * 60;
    if (d) return d + 'd ' + hh + 'h';
    if (hh) return hh + 'h ' + mm + 'm';
    if (mm) return mm + 'm ' + sec + 's';
    return sec + 's';
  }

  function badge(text, kind, title) { return h('span', { class: 'badge ' + (kind || ''), text, title }); }

  function card(label, value, hint, id) {
    const unit = ' ' + state.symbol;
    const v = String(value);
    const num = v.endsWith(unit) ? v.slice(0, -unit.length) : v;
    const cls = 'value' + (num.length > 11 ? ' long' : '');
    const valueEl = num !== v
      ? h('div', { class: cls, id }, num, h('span', { class: 'unit', text: unit }))
      : h('div', { class: cls, text: v, id });
    return h('div', { class: 'card' },
      h('div', { class: 'label', text: label }),
      valueEl,
      hint ? h('div', { class: 'hint', text: hint }) : null);
  }

  // ------------------------------------------------------------ charts

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmtAxis(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + 'M';
    if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + 'k';
    return String(Math.round(v * 100) / 100);
  }

  // Frame: y grid with labels; returns the svg and a y-scale.
  function frame(W, H, pad, maxY) {
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    const y = (v) => H - pad.b - (v / maxY) * (H - pad.t - pad.b);
    for (let i = 0; i <= 4; i++) {
      const v = (maxY * i) / 4;
      svg.append(s('line', { class: i ? 'grid' : 'axis', x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }));
      svg.append(s('text', { class: 'tick', x: pad.l - 8, y: y(v) + 4, 'text-anchor': 'end' }, fmtAxis(v)));
    }
    return { svg, y };
  }

  function throughputChart(series) {
    const W = 900, H = 200, pad = { l: 44, r: 10, t: 12, b: 24 };
    const values = series.map((p) => p[1]);
    const peak = Math.max(0, ...values);
    const maxY = niceMax(peak);
    const { svg, y } = frame(W, H, pad, maxY);
    const n = Math.max(series.length, 1);
    const bw = (W - pad.l - pad.r) / n;
    series.forEach(([sec, v], i) => {
      if (v <= 0) return;
      const x = pad.l + i * bw;
      const rect = s('rect', {
        class: 'bar-rect' + (v === peak ? ' peak' : ''),
        x: x + 0.5, y: y(v), width: Math.max(bw - 1, 1), height: Math.max(y(0) - y(v), 1), rx: 1,
      });
      rect.append(s('title', {}, `${v} units at ${time(sec * 1000)}`));
      svg.append(rect);
    });
    const labels = [[0, '−' + n + 's'], [Math.floor(n / 2), '−' + Math.ceil(n / 2) + 's'], [n - 1, 'now']];
    for (const [i, text] of labels) {
      svg.append(s('text', { class: 'tick', x: pad.l + i * bw + bw / 2, y: H - 6, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle' }, text));
    }
    if (peak === 0) {
      svg.append(s('text', { class: 'empty-note', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no verified work in the last two minutes'));
    }
    return svg;
  }

  // Step line of cumulative earnings over time.
  function earningsChart(events) {
    const W = 900, H = 220, pad = { l: 60, r: 14, t: 12, b: 26 };
    const pts = events.filter((e) => e.time_ms).map((e) => [Number(e.time_ms), tokenFloat(e.cumulative)]);
    const maxY = niceMax(pts.length ? pts[pts.length - 1][1] : 0);
    const { svg, y } = frame(W, H, pad, maxY);
    if (!pts.length) {
      svg.append(s('text', { class: 'empty-note', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no earnings on the ledger yet'));
      return svg;
    }
    const t0 = pts[0][0];
    const t1 = Math.max(pts[pts.length - 1][0], Date.now(), t0 + 1);
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
    let d = `M ${x(t0)} ${y(0)}`;
    let prev = 0;
    for (const [t, v] of pts) {
      d += ` L ${x(t)} ${y(prev)} L ${x(t)} ${y(v)}`;
      prev = v;
    }
    d += ` L ${x(t1)} ${y(prev)}`;
    svg.append(s('path', { class: 'area', d: d + ` L ${x(t1)} ${y(0)} Z` }));
    svg.append(s('path', { class: 'line', d }));
    for (const [t, v] of pts) {
      const c = s('circle', { class: 'dot', cx: x(t), cy: y(v), r: 3 });
      c.append(s('title', {}, `${v.toFixed(4)} ${state.symbol} at ${dateTime(t)}`));
      svg.append(c);
    }
    svg.append(s('text', { class: 'tick', x: pad.l, y: H - 6 }, dateTime(t0)));
    svg.append(s('text', { class: 'tick', x: W - pad.r, y: H - 6, 'text-anchor': 'end' }, 'now'));
    return svg;
  }

  const PALETTE = ['#f0b429', '#38bdf8', '#a78bfa', '#34d399', '#f472b6', '#fb923c', '#94a3b8', '#22d3ee'];

  function allocationChart(allocs, total) {
    const W = 900, H = 34;
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    const T = tokenFloat(total) || 1;
    let x = 0;
    allocs.forEach((a, i) => {
      const w = (tokenFloat(a.amount) / T) * W;
      const r = s('rect', { x, y: 0, width: Math.max(w - 1, 0), height: H, rx: 3, fill: PALETTE[i % PALETTE.length] });
      r.append(s('title', {}, `${a.name}: ${tokens(a.amount, 0)}`));
      svg.append(r);
      x += w;
    });
    return svg;
  }

  // Cumulative scheduled emission by epoch (halving steps) and where we are.
  function emissionChart(t) {
    const W = 900, H = 200, pad = { l: 60, r: 14, t: 12, b: 26 };
    const e = t.emission;
    const interval = Math.max(Number(e.halving_interval_epochs) || 1, 1);
    const initial = tokenFloat(e.initial_per_epoch);
    const pool = tokenFloat(e.pool);
    const halvings = 6;
    const maxEpoch = interval * halvings;
    const maxY = niceMax(pool * 1.1);
    const { svg, y } = frame(W, H, pad, maxY);
    const x = (ep) => pad.l + (ep / maxEpoch) * (W - pad.l - pad.r);
    let cum = 0;
    let d = `M ${x(0)} ${y(0)}`;
    for (let k = 0; k < halvings; k++) {
      cum += (initial / Math.pow(2, k)) * interval;
      d += ` L ${x((k + 1) * interval)} ${y(Math.min(cum, pool))}`;
    }
    svg.append(s('path', { class: 'area', d: d + ` L ${x(maxEpoch)} ${y(0)} Z` }));
    svg.append(s('path', { class: 'line', d }));
    svg.append(s('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: y(pool), y2: y(pool), 'stroke-dasharray': '4 4' }));
    svg.append(s('text', { class: 'tick', x: W - pad.r, y: y(pool) - 6, 'text-anchor': 'end' }, 'contributors’ pool'));
    const nowX = x(Math.min(Number(t.epoch), maxEpoch));
    svg.append(s('line', { x1: nowX, x2: nowX, y1: pad.t, y2: y(0), stroke: '#38bdf8', 'stroke-width': 2 }));
    svg.append(s('text', { class: 'tick', x: nowX + 6, y: pad.t + 12 }, `epoch ${t.epoch} (now)`));
    for (let k = 0; k <= halvings; k += 2) {
      svg.append(s('text', { class: 'tick', x: x(k * interval), y: H - 6, 'text-anchor': k === 0 ? 'start' : k === halvings ? 'end' : 'middle' }, `epoch ${k * interval}`));
    }
    return svg;
  }

  // ------------------------------------------------------------ views

  function renderChainbar(snap) {
    const l = snap.ledger;
    const t = snap.tokenomics;
    const left = Math.max(0, Number(l.epoch_ends_at_ms) - Number(snap.now_ms));
    $('chainbar').replaceChildren(
      h('span', {}, 'chain ', h('b', { text: short(l.chain_id, 12) })),
      h('span', {}, 'height ', h('b', { id: 'ledger-height', text: count(l.height) })),
      h('span', {}, 'epoch ', h('b', { text: String(l.epoch) }), ` · closes in ${duration(left)}`),
      h('span', {}, 'validator ', h('b', { text: short(l.validator, 12) })),
      h('span', {}, 'supply ', h('b', { text: tokens(t.total_supply, 0) })),
    );
    $('foot-version').textContent = 'lode ' + snap.version;
  }

  function jobRow(j) {
    const done = j.completed + j.failed;
    const pct = j.units ? Math.floor((done * 100) / j.units) : 0;
    const status = j.status === 'finished' ? badge('finished', 'ok')
      : j.status === 'cancelled' ? badge('cancelled', 'warn') : badge('running', 'run');
    const fill = h('div', { class: 'fill' + (pct === 100 ? (j.failed ? ' failed' : ' done') : '') });
    fill.style.width = pct + '%';
    return h('tr', { class: 'job', 'data-job': j.job, 'data-progress': pct },
      h('td', {}, h('div', { text: j.name || 'job' }), h('div', { class: 'id muted', text: short(j.job, 12) })),
      h('td', {}, status),
      h('td', { class: 'wide' },
        h('div', { class: 'progress' }, h('div', { class: 'bar' }, fill), h('span', { class: 'pct', text: pct + '%' })),
        h('div', { class: 'muted', text: [`${count(j.completed)}/${count(j.units)} units`,
          j.failed ? `${j.failed} failed` : '', j.in_flight ? `${j.in_flight} in flight` : ''].filter(Boolean).join(' · ') })),
      h('td', { class: 'num', text: tokens(j.cost_so_far, 4) }));
  }

  function nodeRow(n) {
    // Each flag's badge carries its newest evidence as a tooltip.
    const evidence = n.flag_evidence || [];
    const flags = (n.flags || []).map((f) => {
      const ev = evidence.filter((e) => e.kind === f);
      return badge(f, 'bad', ev.length ? ev[ev.length - 1].detail : undefined);
    });
    if (n.results_invalid) flags.push(badge(`${n.results_invalid} rejected`, 'bad', 'results the quorum rejected (never credited)'));
    if (n.trusted) flags.unshift(badge('trusted', 'ok'));
    const rep = n.reputation == null ? '—' : Math.round((Number(n.reputation) * 100) / (Number(n.reputation_max) || 1000)) + '%';
    return h('tr', { class: 'node clickable', 'data-node': n.node, onclick: () => go('earnings', n.node) },
      h('td', { class: 'id', text: short(n.node, 8), title: n.node }),
      h('td', { class: 'num', text: String(n.cpu_slots ?? n.slots ?? 0), title: `${n.in_flight ?? 0} units held (running or queued)` }),
      h('td', { class: 'num', text: speed(n.speed_fuel_per_s) }),
      h('td', { text: n.region || '—' }),
      h('td', { class: 'num', text: rep }),
      h('td', {}, flags.length ? flags : h('span', { class: 'muted', text: 'none' })),
      h('td', { class: 'num', text: tokens(n.earned, 2) }));
  }

  function renderOverview(snap) {
    const series = snap.throughput.series;
    const last10 = series.slice(-10).reduce((a, p) => a + p[1], 0) / 10;
    const running = snap.jobs.filter((j) => j.status === 'running').length;
    $('cards').replaceChildren(
      card('Nodes online', count(snap.nodes_online), `${snap.tokenomics.registered_nodes} registered`, 'nodes-online'),
      card('Units verified', count(snap.totals.units_verified), `${count(snap.totals.units_failed)} failed`, 'units-verified'),
      card('Throughput', last10.toFixed(1) + '/s', 'units, last 10 s average'),
      card('Jobs', count(snap.jobs_total), `${running} running`),
      card('Paid to contributors', tokens(snap.totals.earned, 2), 'fees + epoch rewards'),
      card('Storage', `${((snap.storage?.stored_bytes ?? 0) / 1048576).toFixed(1)} MiB`,
        `${count(snap.storage?.files)} files · audits ${count(snap.storage?.audits_passed)} passed, ${count(snap.storage?.audits_failed)} failed · ${count(snap.storage?.repairs)} repairs`, 'storage'),
    );
    $('tp-chart').replaceChildren(throughputChart(series));
    $('jobs-caption').textContent = snap.jobs_total > snap.jobs.length ? `newest ${snap.jobs.length} of ${snap.jobs_total}` : '';
    fill($('jobs-table').tBodies[0], snap.jobs.map(jobRow), 4, 'No jobs yet. Submit one with: lode job submit examples/jobs/sha256.toml');
    $('nodes-caption').textContent = snap.nodes.length < snap.nodes_online ? `${snap.nodes.length} of ${snap.nodes_online} shown` : '';
    fill($('nodes-table').tBodies[0], snap.nodes.map(nodeRow), 7, 'No nodes online. Start one with: lode node --gateway URL');
  }

  function renderLeaderboard(snap) {
    const rows = snap.leaderboard.map((r, i) => h('tr', {
      class: 'leader clickable' + (state.arg === r.node ? ' selected' : ''), 'data-node': r.node, onclick: () => go('earnings', r.node),
    },
    h('td', { class: 'num', text: String(i + 1) }),
    h('td', { class: 'id', text: short(r.node, 14), title: r.node }),
    h('td', { class: 'num', text: count(r.receipts) }),
    h('td', { class: 'num', text: tokens(r.fees) }),
    h('td', { class: 'num', text: tokens(r.rewards) }),
    h('td', { class: 'num' }, h('b', { text: tokens(r.total) })),
    h('td', { class: 'num', text: tokens(big(r.estimated_reward) + big(r.unsettled_fees)) })));
    fill($('leader-table').tBodies[0], rows, 7, 'No registered nodes yet.');
  }

  // What a payout address can claim, and how.
  async function loadClaim(address, arg) {
    const r = await fetch('/v1/addresses/' + encodeURIComponent(address));
    const body = await r.json();
    if (state.view !== 'earnings' || state.arg !== arg) return;
    $('claim-panel').hidden = false;
    $('claim-address').textContent = address;
    const proofEl = $('claim-proof');
    if (!r.ok) {
      $('claim-cards').replaceChildren(card('Error', body.error ? body.error.code : String(r.status), body.error ? body.error.message : ''));
      $('claim-steps').replaceChildren();
      proofEl.hidden = true;
      return;
    }
    const epoch = body.published_epoch;
    $('claim-cards').replaceChildren(
      card('Claimable (cumulative)', tokens(body.claimable_cumulative), epoch == null ? 'no epoch closed yet' : `in the root of epoch ${epoch}`, 'claim-cumulative'),
      card('Withdrawn to it', tokens(body.withdrawn_cumulative), 'cumulative, all accounts'),
      card('In the next root', tokens(body.unpublished), 'published when the epoch closes ' + dateTime(body.next_root_at_ms)),
    );
    const origin = location.origin;
    const code = (t) => h('code', { text: t });
    $('claim-steps').replaceChildren(
      h('li', {}, 'Withdraw from your Lode balance to this address: ',
        code(`lode wallet withdraw --amount "10 LODE" --to ${body.address} --key node.key --gateway ${origin}`),
        ' (it follows the entry until its epoch closes).'),
      h('li', {}, 'Fetch the claim proof of the newest root: ',
        code(`lode wallet proof ${body.address} --gateway ${origin} --json`), '.'),
      h('li', {}, 'Send ', code('claim(account, cumulative, proof)'),
        ' to the LodeDistributor claim contract with the proof\'s address, amount and proof: it pays the cumulative amount minus what the contract already paid this address, so an old or repeated claim pays nothing more.'),
    );
    if (body.proof) {
      proofEl.textContent = JSON.stringify(body.proof, null, 2);
      proofEl.hidden = false;
    } else {
      proofEl.hidden = true;
    }
  }

  async function loadEarnings(did) {
    if (/^0x/i.test(did)) {
      $('earning-panel').hidden = true;
      return loadClaim(did, did);
    }
    const r = await fetch('/v1/accounts/' + encodeURIComponent(did) + '/earnings');
    const body = await r.json();
    if (state.view !== 'earnings' || state.arg !== did) return;
    if (r.ok && body.payout) loadClaim(body.payout, did).catch(() => {});
    else $('claim-panel').hidden = true;
    $('earning-panel').hidden = false;
    $('earning-node').textContent = short(did, 16);
    $('earning-node').title = did;
    if (!r.ok) {
      $('earning-cards').replaceChildren(card('Error', body.error ? body.error.code : String(r.status), body.error ? body.error.message : ''));
      $('earning-chart').replaceChildren();
      $('earning-table').tBodies[0].replaceChildren();
      return;
    }
    const pending = body.pending ? big(body.pending.estimated_reward) + big(body.pending.unsettled_fees) : 0n;
    $('earning-cards').replaceChildren(
      card('Total earned', tokens(body.total), `${count(body.receipts)} work receipts`, 'earning-total'),
      card('Fees', tokens(body.fees_total), 'paid for verified work'),
      card('Epoch rewards', tokens(body.rewards_total), 'share of emission'),
      card('Pending', tokens(pending), body.pending ? `epoch ${body.pending.epoch}, estimate` : ''),
      card('Payout address', short(body.payout, 12), 'EVM claims'),
    );
    $('earning-chart').replaceChildren(earningsChart(body.events));
    const rows = body.events.slice().reverse().map((e) => h('tr', { class: 'earning' },
      h('td', { class: 'num' }, h('a', { href: '#/ledger/' + e.height, text: String(e.height) })),
      h('td', { text: dateTime(e.time_ms) }),
      h('td', {}, e.kind === 'fee' ? badge('fee', 'run') : badge('reward', 'ok')),
      h('td', { class: 'id', text: e.kind === 'fee' ? 'job ' + short(e.job, 12) : 'epoch ' + e.epoch }),
      h('td', { class: 'num', text: tokens(e.amount) }),
      h('td', { class: 'num', text: tokens(e.cumulative) })));
    fill($('earning-table').tBodies[0], rows, 6, 'No fees or rewards recorded for this node yet (fees are paid when a job settles, rewards when an epoch closes).');
  }

  function checkBadges(v) {
    const out = [
      badge(v.ok ? 'OK' : 'FAIL', v.ok ? 'ok' : 'bad'),
      badge('link', v.link ? 'ok' : 'bad'),
      badge('sig', v.signature ? 'ok' : 'bad'),
    ];
    if (v.entries_root !== undefined) out.push(badge('root', v.entries_root ? 'ok' : 'bad'));
    return out;
  }

  async function loadBlocks() {
    const q = state.blocksBefore == null ? '' : '?before=' + state.blocksBefore;
    const r = await fetch('/v1/ledger/blocks' + q);
    if (!r.ok) return;
    const body = await r.json();
    state.blocksNext = body.next_before;
    state.blocksHeight = body.head;
    $('blocks-older').disabled = body.next_before == null;
    $('blocks-newer').disabled = state.blocksBefore == null;
    const rows = body.blocks.map((b) => h('tr', {
      class: 'block clickable' + (state.selectedBlock === b.height ? ' selected' : ''), 'data-height': b.height,
      onclick: () => go('ledger', String(b.height)),
    },
    h('td', { class: 'num', text: String(b.height) }),
    h('td', { class: 'id', text: short(b.hash, 12), title: b.hash }),
    h('td', { text: time(b.timestamp_ms) }),
    h('td', { class: 'num', text: count(b.entry_count) }),
    h('td', {}, checkBadges(b.verification).slice(0, 1))));
    fill($('blocks-table').tBodies[0], rows, 5, 'No blocks.');
  }

  function entryAmount(e) {
    if (e.amount != null) return tokens(e.amount);
    if (e.fuel != null) return count(e.fuel) + ' fuel';
    return '—';
  }

  async function loadBlock(height) {
    const r = await fetch('/v1/ledger/blocks/' + encodeURIComponent(height));
    const body = await r.json();
    if (state.view !== 'ledger' || state.arg !== height) return;
    $('entry-detail').hidden = true;
    if (!r.ok) {
      $('block-title').textContent = 'Block ' + height;
      $('block-kv').replaceChildren(h('dt', { text: 'error' }), h('dd', { text: body.error ? body.error.message : String(r.status) }));
      $('entries-table').tBodies[0].replaceChildren();
      return;
    }
    const b = body.block;
    $('block-title').replaceChildren('Block ', String(b.height), ' ', h('span', { id: 'block-status' }, checkBadges(b.verification)));
    const kv = [
      ['hash', b.hash], ['previous', b.prev_hash], ['time', dateTime(b.timestamp_ms)],
      ['validator', b.validator], ['entries root', b.entries_root], ['state root', b.state_root],
      ['entries', `${body.entries_total}${body.entries_total > body.entries.length ? ` (first ${body.entries.length} shown)` : ''}`],
    ];
    $('block-kv').replaceChildren(...kv.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
    const rows = body.entries.map((e) => h('tr', {
      class: 'entry clickable', 'data-kind': e.kind,
      onclick: (ev) => {
        for (const tr of ev.currentTarget.parentNode.children) tr.classList.remove('selected');
        ev.currentTarget.classList.add('selected');
        $('entry-detail').hidden = false;
        $('entry-detail').textContent = JSON.stringify(e.detail, null, 2);
      },
    },
    h('td', { class: 'num', text: String(e.index) }),
    h('td', { text: e.kind.replace(/_/g, ' ') }),
    h('td', { class: 'id', title: e.signer }, short(e.signer, 10), ' ', h('span', { class: 'muted', text: e.authority })),
    h('td', { class: 'num', text: entryAmount(e) }),
    h('td', {}, e.verified ? badge('OK', 'ok') : badge('FAIL', 'bad'))));
    fill($('entries-table').tBodies[0], rows, 5, 'This block has no entries.');
  }

  function renderTokenomics(snap) {
    const t = snap.tokenomics;
    const e = t.emission;
    const left = Math.max(0, Number(t.epoch_ends_at_ms) - Number(snap.now_ms));
    $('token-cards').replaceChildren(
      card('Total supply', tokens(t.total_supply, 0), `${t.symbol}, ${t.decimals} decimals`),
      card('Emitted to contributors', tokens(e.emitted, 2), `of a ${tokens(e.pool, 0)} pool`, 'emitted'),
      card('This epoch', tokens(e.this_epoch, 0), `epoch ${t.epoch}, closes in ${duration(left)}`),
      card('Contributors’ share', ppm(t.contributors_share_ppm), `of ${tokens(t.issued, 0)} issued`, 'contributors-share'),
      card('Gini (rewards)', t.gini, `over ${t.rewarded_nodes} rewarded nodes`, 'gini'),
      card('Fees paid', tokens(t.fees_paid, 2), 'requesters → nodes'),
    );
    $('alloc-caption').textContent = `${t.allocations.length} allocations, ${t.epochs_closed} epochs closed`;
    const chart = $('alloc-chart');
    chart.replaceChildren(allocationChart(t.allocations, t.total_supply),
      h('div', { class: 'legend' }, t.allocations.map((a, i) => {
        const sw = h('span', { class: 'sw' });
        sw.style.background = PALETTE[i % PALETTE.length];
        return h('span', {}, sw, `${a.name} ${ppm(Number(big(a.amount) * 1000000n / (big(t.total_supply) || 1n)))}`);
      })));
    const rows = t.allocations.map((a) => h('tr', { class: 'allocation' },
      h('td', { text: a.name }),
      h('td', {}, a.role === 'contributors' ? badge('contributors', 'ok') : badge('vesting')),
      h('td', { class: 'num', text: tokens(a.amount, 0) }),
      h('td', { class: 'num', text: tokens(a.issued, 2) }),
      h('td', { class: 'num', text: ppm(a.share_ppm) }),
      h('td', { class: 'muted', text: a.role === 'contributors' ? `emission, halving every ${e.halving_interval_epochs} epochs`
        : `${tokens(a.unlocked_at_launch, 0)} at launch; cliff ${a.cliff_epochs}, over ${a.vesting_epochs} epochs` })));
    fill($('alloc-table').tBodies[0], rows, 6, 'No allocations.');
    $('emission-caption').textContent = `${tokens(e.initial_per_epoch, 0)} per epoch, halving every ${e.halving_interval_epochs} epochs · next halving at epoch ${e.next_halving_epoch}`;
    $('emission-chart').replaceChildren(emissionChart(t));
  }

  function reportsChart(days) {
    const W = 900, H = 160, pad = { l: 44, r: 10, t: 12, b: 24 };
    const max = niceMax(Math.max(1, ...days.map((d) => Number(d.reports))));
    const { svg, y } = frame(W, H, pad, max);
    const bw = (W - pad.l - pad.r) / Math.max(1, days.length);
    days.forEach((d, i) => {
      const v = Number(d.reports);
      svg.append(s('rect', { class: 'bar-rect', x: pad.l + i * bw + 2, y: y(v), width: Math.max(1, bw - 4), height: y(0) - y(v) },
        s('title', {}, `${new Date(Number(d.day_ms)).toISOString().slice(0, 10)}: ${v} reports`)));
    });
    return svg;
  }

  async function loadData() {
    const r = await fetch('/v1/data/stats', { cache: 'no-store' });
    if (!r.ok) return;
    const d = await r.json();
    $('data-cards').replaceChildren(
      card('Feed size', count(d.feed_size), 'domains listed (hash prefixes)', 'feed-size'),
      card('Confirmed', count(d.domains.confirmed), 'paid to their reporters', 'data-confirmed'),
      card('Pending', count(d.domains.pending), `below k = ${d.k}; never published`, 'data-pending'),
      card('Rejected', count(d.domains.rejected), 'judged benign'),
      card('Browser nodes online', count(d.browser_nodes_online), 'heartbeat in the last 5 h', 'browsers-online'),
    );
    const days = d.reports_per_day || [];
    $('data-caption').textContent = `${days.reduce((a, x) => a + Number(x.reports), 0)} reports in the last 14 days · k = ${d.k}`;
    $('data-chart').replaceChildren(reportsChart(days));
    const rows = (d.top_contributors || []).map((t) => h('tr', { class: 'contributor' },
      h('td', {}, h('a', { href: '#/earnings/' + encodeURIComponent(t.node), text: short(t.node, 18), title: t.node })),
      h('td', { class: 'num', text: count(t.confirmed_reports) })));
    fill($('data-top').tBodies[0], rows, 2, 'No confirmed reports yet.');
  }

  async function loadStaking() {
    const r = await fetch('/v1/staking', { cache: 'no-store' });
    if (!r.ok) {
      $('staking-cards').replaceChildren(card('Staking', 'off', 'this chain has no [staking] in its genesis'));
      return;
    }
    const d = await r.json();
    const apr = d.apr_bps == null ? 'n/a' : (Number(d.apr_bps) / 100).toFixed(2) + ' %';
    $('staking-cards').replaceChildren(
      card('Bonded', tokens(d.bonded, 2), `${count(d.targets_total)} targets`, 'staking-bonded'),
      card('APR estimate', apr, `from the last ${(d.recent_epochs || []).length} epochs`, 'staking-apr'),
      card('Stakers’ share', `${(Number(d.params.staking_share_bps) / 100).toFixed(2)} %`, 'of each epoch’s emission'),
      card('Treasury', tokens(d.treasury, 2), 'slashes, vetoed deposits, remainders'),
      card('Unbonding', tokens(d.unbonding, 2), `${d.params.unbonding_epochs} epochs`),
    );
    $('staking-caption').textContent = `validator set: ${(d.validator_set || []).length} in force, ${(d.next_validator_set || []).length} next epoch; signing blocks: ${(d.validators_in_force || []).map((v) => `${v.validator.slice(0, 16)}… (power ${v.power})`).join(', ') || 'none'}`;
    const rows = (d.targets || []).map((t) => h('tr', {},
      h('td', {}, h('span', { class: 'mono', text: short(t.target, 18), title: t.target })),
      h('td', { text: t.kind }),
      h('td', { class: 'num', text: tokens(t.power, 2) }),
      h('td', { class: 'num', text: (Number(t.commission_bps) / 100).toFixed(2) + ' %' }),
      h('td', { class: 'num', text: tokens(t.rewards_total, 2) }),
      h('td', { text: t.tombstoned ? 'tombstoned' : t.jailed ? 'jailed' : (d.validator_set || []).includes(t.target) ? 'in the set' : 'active' })));
    fill($('staking-targets').tBodies[0], rows, 6, 'Nothing is staked yet.');
    if (state.stakeAccount) loadStakeAccount(state.stakeAccount).catch(() => {});
  }

  async function loadStakeAccount(did) {
    state.stakeAccount = did;
    const r = await fetch('/v1/staking/' + encodeURIComponent(did), { cache: 'no-store' });
    if (!r.ok) {
      fill($('stake-account').tBodies[0], [], 3, 'Not an account (did:key:…).');
      return;
    }
    const a = await r.json();
    const rows = (a.delegations || []).map((x) => h('tr', {},
      h('td', {}, h('span', { class: 'mono', text: short(x.target, 18), title: x.target })),
      h('td', { class: 'num', text: tokens(x.amount) }),
      h('td', { text: 'bonded' }))).concat((a.unbondings || []).map((x) => h('tr', {},
      h('td', {}, h('span', { class: 'mono', text: short(x.from, 18), title: x.from })),
      h('td', { class: 'num', text: tokens(x.amount) }),
      h('td', { text: `unbonding, liquid at the close of epoch ${x.released_at_close_of_epoch}` }))));
    fill($('stake-account').tBodies[0], rows, 3, 'No stake.');
  }

  function changeText(c) {
    if (c == null || typeof c !== 'object') return String(c);
    const [k, v] = Object.entries(c)[0] || ['?', null];
    if (v != null && typeof v === 'object' && 'amount' in v) return `${k}: ${tokens(v.amount)} to ${short(v.to, 14)}`;
    return `${k} = ${v == null ? 'gateway default' : typeof v === 'object' ? JSON.stringify(v) : v}`;
  }

  async function loadGov() {
    const r = await fetch('/v1/gov/proposals', { cache: 'no-store' });
    if (!r.ok) {
      $('gov-cards').replaceChildren(card('Governance', 'off', 'this chain has no [governance] in its genesis'));
      fill($('gov-table').tBodies[0], [], 9, 'Governance is off.');
      return;
    }
    const d = await r.json();
    const list = d.proposals || [];
    $('gov-cards').replaceChildren(
      card('Proposals', count(list.length), `open epoch ${d.epoch}`, 'gov-count'),
      card('Voting', count(list.filter((p) => p.open).length), 'open now'),
      card('Passed', count(list.filter((p) => p.status === 'passed').length), 'in force from the epoch after the tally'),
    );
    const rows = list.map((p) => h('tr', {},
      h('td', { class: 'num', text: String(p.id) }),
      h('td', { text: p.title }),
      h('td', { class: 'mono', text: changeText(p.change) }),
      h('td', { text: `${p.submitted_epoch}–${p.voting_end_epoch}` }),
      h('td', { class: 'num', text: tokens(p.tally.yes, 2) }),
      h('td', { class: 'num', text: tokens(p.tally.no, 2) }),
      h('td', { class: 'num', text: tokens(p.tally.abstain, 2) }),
      h('td', { class: 'num', text: tokens(p.tally.veto, 2) }),
      h('td', { text: p.open ? `voting (now: ${p.outcome_if_tallied_now})` : p.status })));
    fill($('gov-table').tBodies[0], rows, 9, 'No proposals yet.');
  }

  // Validators of a replicated chain (GET /v1/validators). The panel stays
  // hidden on a chain this gateway seals itself.
  // A validator's did by its last characters (did:key:z6Mk… prefixes are all alike).
  function vid(did) {
    const str = String(did || '');
    return str.length > 12 ? '…' + str.slice(-8) : str;
  }

  function validatorStatus(v) {
    const kind = v.online ? 'online' : v.answered ? 'stale' : 'offline';
    const text = v.online ? 'online' : v.answered ? 'not signing' : 'offline';
    const title = v.online ? 'its status answers and it signed one of the last 5 blocks'
      : v.answered ? 'its status answers but it has not signed one of the last 5 blocks'
        : 'its status endpoint does not answer';
    const dot = h('span', { class: 'vdot' });
    dot.setAttribute('aria-hidden', 'true');
    return h('span', { class: 'vstatus ' + kind, title, 'data-online': v.online ? 'true' : 'false' }, dot, text);
  }

  function signersCell(b, validators) {
    const signers = b.signers || [];
    const n = validators.length || signers.length;
    const summary = `${signers.length}/${n} (power ${count(b.signed_power)}/${count(b.total_power)})`;
    return h('td', { title: signers.join('\n') },
      h('div', { text: summary }),
      h('div', { class: 'signers muted' }, signers.map((d) => h('span', { class: 'mono', text: vid(d), title: d }))));
  }

  function renderValidators(d) {
    state.replicated = d.replicated === true;
    $('validators-panel').hidden = !state.replicated;
    if (!state.replicated) return;
    const vals = d.validators || [];
    const f = d.finality_ms || {};
    const ms = (x) => (x == null ? '—' : count(x) + ' ms');
    $('validators-cards').replaceChildren(
      card('Chain height', d.height == null ? '—' : count(d.height), `this gateway at ${count(d.gateway_height)}`, 'validators-height'),
      card('Validators online', `${count(d.online)}/${count(vals.length)}`, `${count(d.answered)} of ${count(d.asked)} status endpoints answered`, 'validators-online'),
      card('Finality p50', ms(f.p50), `submission to commit, ${count(f.samples)} samples`, 'finality-p50'),
      card('Finality p99', ms(f.p99), 'worst of the validators that answered', 'finality-p99'),
    );
    $('validators-caption').textContent = `total power ${count(d.total_power)} · a block needs more than 2/3 of it`;
    const rows = vals.map((v) => h('tr', { class: 'validator', 'data-did': v.did },
      h('td', {}, h('span', { class: 'mono', text: vid(v.did), title: v.did + (v.url ? '\n' + v.url : '') })),
      h('td', { class: 'num', text: count(v.power) }),
      h('td', { class: 'num', text: v.last_signed_height == null ? 'never' : count(v.last_signed_height) }),
      h('td', {}, validatorStatus(v)),
      h('td', { class: 'num', text: v.height == null ? '—' : count(v.height) })));
    fill($('validators-table').tBodies[0], rows, 5, 'No validator answered.');
    const blocks = (d.recent_blocks || []).slice(0, 10).map((b) => h('tr', { class: 'vblock', 'data-height': b.height },
      h('td', { class: 'num' }, h('a', { href: '#/ledger/' + b.height, text: count(b.height) })),
      h('td', {}, h('span', { class: 'mono', text: vid(b.proposer), title: b.proposer })),
      h('td', { class: 'num', text: String(b.round ?? 0) }),
      signersCell(b, vals),
      h('td', { class: 'num', text: count(b.entries) })));
    fill($('vblocks-table').tBodies[0], blocks, 5, 'No block decided yet.');
  }

  async function loadValidators() {
    if (state.validatorsBusy || state.replicated === false) return;
    state.validatorsBusy = true;
    state.validatorsAt = Date.now();
    try {
      const r = await fetch('/v1/validators', { cache: 'no-store' });
      if (r.ok) renderValidators(await r.json());
    } finally {
      state.validatorsBusy = false;
    }
  }

  function maybeLoadValidators() {
    if (state.view !== 'overview' || state.replicated === false) return;
    if (Date.now() - state.validatorsAt < VALIDATORS_MS - 250) return;
    loadValidators().catch(() => {});
  }

  // ------------------------------------------------------------ routing

  function go(view, arg) {
    location.hash = '#/' + view + (arg ? '/' + encodeURIComponent(arg) : '');
  }

  function route() {
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    const view = ['overview', 'earnings', 'ledger', 'tokenomics', 'data', 'staking', 'gov'].includes(parts[0]) ? parts[0] : 'overview';
    const arg = parts[1] ? decodeURIComponent(parts.slice(1).join('/')) : null;
    state.view = view;
    state.arg = arg;
    for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.view === view);
    for (const sec of document.querySelectorAll('.view')) sec.hidden = sec.id !== 'view-' + view;
    if (view === 'earnings') {
      $('earning-panel').hidden = !arg || /^0x/i.test(arg);
      $('claim-panel').hidden = !arg;
      if (arg) loadEarnings(arg).catch(() => {});
    }
    if (view === 'ledger') {
      state.selectedBlock = arg == null ? null : Number(arg);
      loadBlocks().catch(() => {});
      if (arg != null) loadBlock(arg).catch(() => {});
    }
    if (state.snap) render(state.snap);
  }

  function render(snap) {
    state.snap = snap;
    state.symbol = snap.tokenomics.symbol || 'LODE';
    state.decimals = Number(snap.tokenomics.decimals) || 18;
    renderChainbar(snap);
    const height = Number(snap.ledger.height);
    if (state.view === 'overview') {
      renderOverview(snap);
      maybeLoadValidators();
    }
    if (state.view === 'earnings') {
      renderLeaderboard(snap);
      if (state.arg && state.earningsHeight !== height) {
        state.earningsHeight = height;
        loadEarnings(state.arg).catch(() => {});
      }
    }
    if (state.view === 'ledger' && state.blocksBefore == null && state.blocksHeight !== height) {
      state.blocksHeight = height;
      loadBlocks().catch(() => {});
    }
    if (state.view === 'tokenomics') renderTokenomics(snap);
    if (state.view === 'data' && state.dataHeight !== height) {
      state.dataHeight = height;
      loadData().catch(() => {});
    }
    if (state.view === 'staking' && state.stakingHeight !== height) {
      state.stakingHeight = height;
      loadStaking().catch(() => {});
    }
    if (state.view === 'gov' && state.govHeight !== height) {
      state.govHeight = height;
      loadGov().catch(() => {});
    }
  }

  // ------------------------------------------------------------ live data

  let source = null;
  let pollTimer = null;

  function setLive(mode, text) {
    $('live').className = 'live ' + mode;
    $('live-text').textContent = text;
  }

  async function pollOnce() {
    try {
      const r = await fetch('/v1/dashboard', { cache: 'no-store' });
      if (!r.ok) throw new Error(String(r.status));
      render(await r.json());
      if (!source) setLive('poll', 'polling');
    } catch (_) {
      setLive('off', 'gateway unreachable');
    }
  }

  function startPolling() {
    if (pollTimer) return;
    pollTimer = setInterval(pollOnce, POLL_MS);
    pollOnce();
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  function connect() {
    if (!('EventSource' in window)) { startPolling(); return; }
    source = new EventSource('/v1/events');
    source.addEventListener('snapshot', (ev) => {
      stopPolling();
      setLive('on', 'live');
      try { render(JSON.parse(ev.data)); } catch (_) { /* a bad event: wait for the next */ }
    });
    source.onerror = () => {
      // Fall back to polling; try the stream again later.
      if (source) source.close();
      source = null;
      setLive('poll', 'polling');
      startPolling();
      setTimeout(connect, RETRY_SSE_MS);
    };
  }

  $('blocks-older').addEventListener('click', () => {
    if (state.blocksNext == null) return;
    state.blocksBefore = state.blocksNext;
    loadBlocks().catch(() => {});
  });
  $('blocks-newer').addEventListener('click', () => {
    state.blocksBefore = null;
    loadBlocks().catch(() => {});
  });
  $('claim-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('claim-input').value.trim();
    if (v) go('earnings', v);
  });
  $('stake-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('stake-input').value.trim();
    if (v) loadStakeAccount(v).catch(() => {});
  });
  window.addEventListener('hashchange', route);
  route();
  pollOnce();
  connect();
  // Blocks may be decided while no snapshot changes: refresh on a timer too.
  setInterval(maybeLoadValidators, VALIDATORS_MS);
})();
