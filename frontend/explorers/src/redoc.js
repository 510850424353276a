// ReDoc for /redoc, configured from the page's JSON data block.
import { readConfig } from "./config.js";

const config = readConfig("redoc-config");

// The standalone bundle, loaded before this file, sets `window.Redoc`. Its search runs in a blob: worker, which the
// page's CSP refuses, so search is off rather than half-broken.
window.Redoc.init(
  config.url || "/openapi.json",
  { disableSearch: true, hideDownloadButton: false },
  document.getElementById("redoc"),
);
