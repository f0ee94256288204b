// Copies the chart library npm installed (see package-lock.json) into
// static/vendor/, which the Go binary embeds. The output is committed, so
// `go build` and `go run` need no npm; web_test.go checks it is exactly
// what this build produces. Run: cd web && npm ci && npm run build
import { copyFileSync, mkdirSync } from "node:fs";

const out = new URL("./static/vendor/", import.meta.url);
mkdirSync(out, { recursive: true });
const dist = new URL("./node_modules/uplot/dist/", import.meta.url);
copyFileSync(new URL("uPlot.iife.min.js", dist), new URL("uplot.min.js", out));
copyFileSync(new URL("uPlot.min.css", dist), new URL("uplot.min.css", out));
