// Shared by the popup and the onboarding page: messages to the service worker.
export const $ = (id) => document.getElementById(id);

export async function call(msg) {
  const r = await chrome.runtime.sendMessage(msg);
  if (!r) throw new Error('the extension did not answer');
  if (!r.ok) {
    const e = new Error(r.error.message);
    e.code = r.error.code;
    throw e;
  }
  return r.value;
}

/** Base units (18 decimals) as a token amount with up to `digits` decimals. */
export function tokens(baseUnits, digits = 6) {
  const v = BigInt(baseUnits || 0);
  const one = 10n ** 18n;
  const whole = v / one;
  let frac = (v % one).toString().padStart(18, '0').slice(0, digits).replace(/0+$/, '');
  return whole.toString() + (frac ? '.' + frac : '') + ' LODE';
}

export function el(tag, props = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k != null) e.append(k);
  return e;
}
