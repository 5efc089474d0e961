// ansi.js - terminal log lines to DOM nodes, the way a terminal would show them.
//
// Log text is never parsed as HTML: every piece of text becomes a span's textContent, so a
// line such as `<img onerror=...>` is shown, not run (no innerHTML anywhere). Handled:
// - SGR (ESC [ ... m): reset, bold, dim, italic, underline, inverse, 30-37/90-97 and
//   40-47/100-107 (classes fg-N / bg-N, themed in app.css), 39/49 defaults, 256 colours
//   (38;5;N / 48;5;N: the first 16 as classes, the rest computed) and truecolor
//   (38;2;R;G;B) as inline colours set through the CSSOM (allowed by the page's CSP);
// - other CSI sequences (erase line, cursor moves), OSC/APC/DCS/PM/SOS strings (ended by
//   BEL or ESC \, e.g. Buildkite's `ESC _bk;t=...BEL` timestamps) and two-byte escapes:
//   dropped; other C0 controls except TAB and LF: dropped;
// - CR: a progress line redrawn with CR shows its last segment that has visible text
//   ("10%\r50%\r100%" -> "100%"; a trailing CR keeps the text before it). SGR state
//   carries across segments, as in a terminal.

const BASIC = [ // xterm's 16 colours, for 256-colour indexes only (classes theme 0-15)
  [0, 0, 0], [205, 0, 0], [0, 205, 0], [205, 205, 0], [0, 0, 238], [205, 0, 205],
  [0, 205, 205], [229, 229, 229], [127, 127, 127], [255, 0, 0], [0, 255, 0], [255, 255, 0],
  [92, 92, 255], [255, 0, 255], [0, 255, 255], [255, 255, 255],
];

/** RGB of xterm colour index n (16-255). */
export function xterm256(n) {
  if (n < 16) return BASIC[n];
  if (n >= 232) { const v = 8 + (n - 232) * 10; return [v, v, v]; }
  const i = n - 16, steps = [0, 95, 135, 175, 215, 255];
  return [steps[Math.floor(i / 36)], steps[Math.floor(i / 6) % 6], steps[i % 6]];
}

function freshStyle() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false,
    inverse: false };
}

// A colour is {cls: 'N'} for the 16 themed ones or {rgb: [r,g,b]}.
function extended(params, i) {
  const mode = params[i + 1];
  if (mode === 5 && params.length > i + 2) {
    const n = params[i + 2];
    if (n >= 0 && n <= 255) return { colour: n < 16 ? { cls: n } : { rgb: xterm256(n) }, next: i + 3 };
    return { colour: null, next: i + 3 };
  }
  if (mode === 2 && params.length > i + 4) {
    const rgb = [params[i + 2], params[i + 3], params[i + 4]].map((v) => Math.max(0, Math.min(255, v | 0)));
    return { colour: { rgb }, next: i + 5 };
  }
  return { colour: null, next: params.length };
}

/** Apply one SGR parameter list (numbers; empty = [0]) to @st. */
export function applySgr(st, params) {
  if (params.length === 0) params = [0];
  for (let i = 0; i < params.length;) {
    const p = params[i];
    if (p === 0) Object.assign(st, freshStyle());
    else if (p === 1) st.bold = true;
    else if (p === 2) st.dim = true;
    else if (p === 3) st.italic = true;
    else if (p === 4) st.underline = true;
    else if (p === 7) st.inverse = true;
    else if (p === 22) { st.bold = false; st.dim = false; }
    else if (p === 23) st.italic = false;
    else if (p === 24) st.underline = false;
    else if (p === 27) st.inverse = false;
    else if (p >= 30 && p <= 37) st.fg = { cls: p - 30 };
    else if (p >= 90 && p <= 97) st.fg = { cls: p - 90 + 8 };
    else if (p === 39) st.fg = null;
    else if (p >= 40 && p <= 47) st.bg = { cls: p - 40 };
    else if (p >= 100 && p <= 107) st.bg = { cls: p - 100 + 8 };
    else if (p === 49) st.bg = null;
    else if (p === 38 || p === 48) {
      const { colour, next } = extended(params, i);
      if (colour) { if (p === 38) st.fg = colour; else st.bg = colour; }
      i = next;
      continue;
    }
    i++;
  }
  return st;
}

/**
 * Parse @line into segments (split at CR) of runs {text, style}. Pure (no DOM): the tests
 * and renderLine() share it.
 */
export function parseAnsi(line) {
  const segments = [[]];
  let st = freshStyle();
  let text = '';
  const flush = () => {
    if (text) segments[segments.length - 1].push({ text, style: { ...st } });
    text = '';
  };
  const n = line.length;
  for (let i = 0; i < n;) {
    const c = line.charCodeAt(i);
    if (c === 0x1b) {
      const k = line.charCodeAt(i + 1);
      if (k === 0x5b) { // CSI: ESC [ params intermediates final
        let j = i + 2;
        while (j < n && line.charCodeAt(j) >= 0x30 && line.charCodeAt(j) <= 0x3f) j++;
        const params = line.slice(i + 2, j);
        while (j < n && line.charCodeAt(j) >= 0x20 && line.charCodeAt(j) <= 0x2f) j++;
        if (j >= n) { i = n; break; } // cut short: drop it
        const fin = line[j];
        if (fin === 'm' && /^[0-9;:]*$/.test(params)) {
          flush();
          st = applySgr(st, params === '' ? [] : params.split(/[;:]/).map((x) => (x === '' ? 0 : Number(x))));
        }
        i = j + 1;
        continue;
      }
      if (k === 0x5d || k === 0x5f || k === 0x50 || k === 0x5e || k === 0x58) {
        // OSC ] APC _ DCS P PM ^ SOS X: a string ended by BEL or ESC \
        let j = i + 2;
        while (j < n && line.charCodeAt(j) !== 0x07 && !(line.charCodeAt(j) === 0x1b && line[j + 1] === '\\')) j++;
        i = j >= n ? n : line.charCodeAt(j) === 0x07 ? j + 1 : j + 2;
        continue;
      }
      // other escapes: ESC, intermediates 0x20-0x2f, one final byte
      let j = i + 1;
      while (j < n && line.charCodeAt(j) >= 0x20 && line.charCodeAt(j) <= 0x2f) j++;
      i = Math.min(n, j + 1);
      continue;
    }
    if (c === 0x0d) {
      flush();
      segments.push([]);
      i++;
      continue;
    }
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a) || c === 0x7f) { i++; continue; }
    let j = i + 1;
    while (j < n) {
      const d = line.charCodeAt(j);
      if (d === 0x1b || d === 0x0d || (d < 0x20 && d !== 0x09 && d !== 0x0a) || d === 0x7f) break;
      j++;
    }
    text += line.slice(i, j);
    i = j;
  }
  flush();
  return segments;
}

/** The runs a terminal would leave on screen: the last CR segment with visible text. */
export function visibleRuns(line) {
  const segs = parseAnsi(line);
  for (let k = segs.length - 1; k >= 0; k--)
    if (segs[k].some((r) => r.text.length)) return segs[k];
  return [];
}

/** Plain text of what renderLine() shows. */
export function visibleText(line) {
  return visibleRuns(line).map((r) => r.text).join('');
}

function applyColour(span, colour, which, classes) {
  if (!colour) return;
  if (colour.cls !== undefined) classes.push(which + '-' + colour.cls);
  else span.style[which === 'fg' ? 'color' : 'backgroundColor'] = 'rgb(' + colour.rgb.join(',') + ')';
}

/** Append the rendered @line to @parent (spans with textContent only). */
export function renderLine(parent, line) {
  const doc = parent.ownerDocument;
  for (const run of visibleRuns(line)) {
    const s = run.style;
    const plain = !s.fg && !s.bg && !s.bold && !s.dim && !s.italic && !s.underline && !s.inverse;
    if (plain) {
      parent.appendChild(doc.createTextNode(run.text));
      continue;
    }
    const span = doc.createElement('span');
    const classes = [];
    let fg = s.fg, bg = s.bg;
    if (s.inverse) {
      [fg, bg] = [bg, fg];
      if (!fg) classes.push('inv-fg');
      if (!bg) classes.push('inv-bg');
    }
    applyColour(span, fg, 'fg', classes);
    applyColour(span, bg, 'bg', classes);
    if (s.bold) classes.push('b');
    if (s.dim) classes.push('dim');
    if (s.italic) classes.push('i');
    if (s.underline) classes.push('u');
    if (classes.length) span.className = classes.join(' ');
    span.textContent = run.text;
    parent.appendChild(span);
  }
}
