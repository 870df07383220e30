// The consent page: one switch per data category, all off until the user acts.
import { call, $ } from './ui.js';

async function render() {
  const s = await call({ type: 'state' });
  $('did').textContent = s.did;
  $('gateway').textContent = s.gateway;
  if (!$('gateway-url').value) $('gateway-url').value = s.gateway;
  $('budget').textContent = `${Math.round(s.budget / 1000)} KB`;
  for (const c of ['manual', 'classifier', 'heartbeat', 'protect']) $('c-' + c).checked = !!s.consent[c];
  $('pause').textContent = s.paused ? 'Resume' : 'Pause all';
  document.body.classList.toggle('paused', s.paused);
}

for (const c of ['manual', 'classifier', 'heartbeat', 'protect']) {
  $('c-' + c).addEventListener('change', async (ev) => {
    const on = ev.target.checked;
    try {
      await call({ type: 'setConsent', category: c, on });
      $('msg').textContent = on ? `"${c}" is on.` : `"${c}" is off.`;
    } catch (e) {
      $('msg').textContent = e.message;
    }
    render();
  });
}

$('gateway-save').addEventListener('click', async () => {
  try {
    await call({ type: 'setGateway', url: $('gateway-url').value.trim() });
    $('msg').textContent = 'Gateway saved.';
  } catch (e) {
    $('msg').textContent = e.message;
  }
  render();
});

$('pause').addEventListener('click', async () => {
  const s = await call({ type: 'state' });
  await call({ type: 'pause', paused: !s.paused });
  render();
});

render();
