// The interstitial: shown instead of a page the local classifier flags or the
// community feed lists. "Go back" leaves; "This is a mistake" continues to the page
// (allowed for this browsing session) and, only if the user ticks it and has
// switched on reports, sends a false-positive report of the domain.
import { call, $ } from './ui.js';

const p = new URLSearchParams(location.hash.slice(1));
const url = p.get('url') || '';
const domain = p.get('domain') || '';
$('domain').textContent = domain;
$('reason').textContent = p.get('why') === 'community'
  ? 'The Lode community has confirmed reports that this site is a scam or phishing site.'
  : `Lode's scam classifier scores this address ${Number(p.get('score') || 0).toFixed(2)} (it warns from ${Number(p.get('threshold') || 0).toFixed(2)}): it looks like a phishing page.`;

if (p.get('why') === 'community') {
  $('privacy').textContent = 'Lode checked this address on your device against the community list; at most a 4-byte hash prefix, shared by many sites, was asked about.';
}

call({ type: 'state' }).then((s) => { $('tell-row').hidden = !s.consent.manual || s.paused; }).catch(() => {});

$('back').addEventListener('click', () => {
  if (history.length > 1) history.back();
  else location.replace('about:blank');
});

$('mistake').addEventListener('click', async () => {
  try {
    if ($('tell').checked) await call({ type: 'report', url, includeUrl: false, verdict: 'mistake', category: 'phishing' });
    await call({ type: 'allowOnce', domain });
    location.replace(url);
  } catch (e) {
    $('msg').textContent = e.message;
  }
});
