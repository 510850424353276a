// Reads the page's configuration from its JSON data block: pages carry no inline script, so
// they run under `script-src 'self'`.
export function readConfig(id) {
  const element = document.getElementById(id);
  return element ? JSON.parse(element.textContent) : {};
}
