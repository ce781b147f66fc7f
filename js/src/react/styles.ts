/**
 * Default stylesheet. Theme it with the custom properties below (set them on
 * `.bellhop-inbox` or any ancestor), or skip it and style the class names.
 */
export const defaultStyles = `
.bellhop-inbox {
  --bellhop-font: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  --bellhop-fg: #1f2328;
  --bellhop-muted: #656d76;
  --bellhop-bg: #ffffff;
  --bellhop-hover: #f6f8fa;
  --bellhop-border: #d0d7de;
  --bellhop-accent: #0969da;
  --bellhop-unread-bg: #ddf4ff;
  --bellhop-badge-bg: #cf222e;
  --bellhop-badge-fg: #ffffff;
  --bellhop-danger: #cf222e;
  --bellhop-radius: 8px;
  --bellhop-width: 360px;
  --bellhop-max-height: 480px;
  --bellhop-shadow: 0 8px 24px rgba(140, 149, 159, 0.3);
  position: relative;
  display: inline-block;
  font-family: var(--bellhop-font);
  color: var(--bellhop-fg);
}
.bellhop-bell {
  position: relative;
  display: inline-flex;
  align-items: center;
  justify-content: center;
  width: 40px;
  height: 40px;
  padding: 0;
  border: 1px solid var(--bellhop-border);
  border-radius: 50%;
  background: var(--bellhop-bg);
  color: var(--bellhop-fg);
  cursor: pointer;
}
.bellhop-bell:hover { background: var(--bellhop-hover); }
.bellhop-inbox button:focus-visible, .bellhop-panel:focus-visible {
  outline: 2px solid var(--bellhop-accent);
  outline-offset: 2px;
}
.bellhop-bell svg { width: 20px; height: 20px; }
.bellhop-badge {
  position: absolute;
  top: -4px;
  right: -6px;
  min-width: 18px;
  height: 18px;
  padding: 0 5px;
  box-sizing: border-box;
  border-radius: 9px;
  background: var(--bellhop-badge-bg);
  color: var(--bellhop-badge-fg);
  font-size: 11px;
  font-weight: 600;
  line-height: 18px;
  text-align: center;
}
.bellhop-badge:empty { display: none; }
.bellhop-panel {
  position: absolute;
  left: var(--bellhop-panel-left, auto);
  right: var(--bellhop-panel-right, 0);
  top: calc(100% + 8px);
  z-index: 1000;
  width: var(--bellhop-width);
  max-width: calc(100vw - 16px);
  max-height: var(--bellhop-max-height);
  overflow: auto;
  background: var(--bellhop-bg);
  border: 1px solid var(--bellhop-border);
  border-radius: var(--bellhop-radius);
  box-shadow: var(--bellhop-shadow);
  text-align: left;
}
.bellhop-header {
  position: sticky;
  top: 0;
  display: flex;
  align-items: center;
  justify-content: space-between;
  gap: 8px;
  padding: 10px 12px;
  background: var(--bellhop-bg);
  border-bottom: 1px solid var(--bellhop-border);
}
.bellhop-title { margin: 0; font-size: 15px; font-weight: 600; }
.bellhop-link {
  border: 0;
  background: none;
  padding: 4px 6px;
  border-radius: 4px;
  color: var(--bellhop-accent);
  font: inherit;
  font-size: 13px;
  cursor: pointer;
}
.bellhop-link:hover:not(:disabled) { background: var(--bellhop-hover); }
.bellhop-link:disabled { color: var(--bellhop-muted); cursor: default; }
.bellhop-link.bellhop-danger { color: var(--bellhop-danger); }
.bellhop-list { list-style: none; margin: 0; padding: 0; }
.bellhop-item {
  display: flex;
  gap: 8px;
  padding: 10px 12px;
  border-bottom: 1px solid var(--bellhop-border);
}
.bellhop-item:last-child { border-bottom: 0; }
.bellhop-item[data-unread="true"] { background: var(--bellhop-unread-bg); }
.bellhop-item-main { flex: 1; min-width: 0; }
.bellhop-item-title { margin: 0; font-size: 14px; font-weight: 600; overflow-wrap: anywhere; }
.bellhop-item[data-unread="false"] .bellhop-item-title { font-weight: 400; }
.bellhop-item-body { margin: 2px 0 0; font-size: 13px; color: var(--bellhop-muted); overflow-wrap: anywhere; }
.bellhop-progress-row { display: flex; align-items: center; gap: 8px; margin-top: 6px; font-size: 12px; color: var(--bellhop-muted); }
.bellhop-progress { flex: 1; height: 8px; accent-color: var(--bellhop-accent); }
.bellhop-time { display: block; margin-top: 4px; font-size: 12px; color: var(--bellhop-muted); }
.bellhop-item-actions { display: flex; flex-direction: column; align-items: flex-end; gap: 2px; }
.bellhop-dot {
  display: inline-block;
  width: 8px;
  height: 8px;
  margin-right: 6px;
  border-radius: 50%;
  background: var(--bellhop-accent);
  vertical-align: middle;
}
.bellhop-item-avatar { flex: none; width: 32px; height: 32px; border-radius: 50%; object-fit: cover; }
.bellhop-item-link { display: block; color: inherit; text-decoration: none; }
.bellhop-item-link:hover .bellhop-item-title { text-decoration: underline; }
.bellhop-item-link:focus-visible { outline: 2px solid var(--bellhop-accent); outline-offset: 2px; }
.bellhop-item-buttons { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
.bellhop-action {
  display: inline-block;
  padding: 3px 10px;
  border: 1px solid var(--bellhop-border);
  border-radius: 6px;
  background: var(--bellhop-bg);
  color: var(--bellhop-fg);
  font: inherit;
  font-size: 13px;
  text-decoration: none;
  cursor: pointer;
}
.bellhop-action:hover { background: var(--bellhop-hover); }
.bellhop-tabs { display: flex; gap: 4px; padding: 6px 12px 0; border-bottom: 1px solid var(--bellhop-border); }
.bellhop-tab {
  border: 0;
  border-bottom: 2px solid transparent;
  background: none;
  padding: 4px 8px 6px;
  color: var(--bellhop-muted);
  font: inherit;
  font-size: 13px;
  cursor: pointer;
}
.bellhop-tab[aria-selected="true"] { color: var(--bellhop-fg); border-bottom-color: var(--bellhop-accent); font-weight: 600; }
.bellhop-tabpanel:focus-visible { outline: 2px solid var(--bellhop-accent); outline-offset: -2px; }
.bellhop-state { margin: 0; padding: 24px 12px; text-align: center; color: var(--bellhop-muted); font-size: 14px; }
.bellhop-error { color: var(--bellhop-danger); }
.bellhop-footer { padding: 8px 12px; text-align: center; border-top: 1px solid var(--bellhop-border); }
.bellhop-sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0;
}
`;

const STYLE_ID = 'bellhop-default-styles';

/** Insert the default stylesheet into `document.head` once. */
export function injectDefaultStyles(doc: Document | undefined = typeof document === 'undefined' ? undefined : document): void {
  if (!doc || doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement('style');
  style.id = STYLE_ID;
  style.textContent = defaultStyles;
  doc.head.appendChild(style);
}
