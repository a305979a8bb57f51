// Serves page.html with the dashboard JSON and uPlot on loopback, proxies
// /api/v1/query_range and /api/v1/query to a real Prometheus (so the page
// needs no CORS), opens it in Debian's headless Chromium through
// playwright-core and writes a PNG of the whole page.
//
//   node render.mjs --prometheus http://127.0.0.1:9090 --dashboard FILE \
//        --cluster NAME --start UNIX --end UNIX --step SECONDS --out FILE [--note TEXT]
//
// Run with NODE_PATH unset from the directory where `npm install` put
// playwright-core and uplot (make dashboard-picture: ~/.cache/pgward/dashboard).
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
for (const k of ["prometheus", "dashboard", "cluster", "start", "end", "step", "out"]) {
  if (!args[k]) { console.error(`render.mjs: --${k} is required`); process.exit(2); }
}
const modules = path.resolve(args.modules || path.join(process.cwd(), "node_modules"));
const files = {
  "/": [path.join(here, "page.html"), "text/html"],
  "/page.js": [path.join(here, "page.js"), "text/javascript"],
  "/dashboard.json": [args.dashboard, "application/json"],
  "/uplot/uPlot.min.css": [path.join(modules, "uplot/dist/uPlot.min.css"), "text/css"],
  "/uplot/uPlot.iife.min.js": [path.join(modules, "uplot/dist/uPlot.iife.min.js"), "text/javascript"],
};
const prom = new URL(args.prometheus);

const server = http.createServer((req, res) => {
  const u = new URL(req.url, "http://localhost");
  if (req.method === "GET" && (u.pathname === "/api/v1/query_range" || u.pathname === "/api/v1/query")) {
    const up = http.get({ host: prom.hostname, port: prom.port, path: u.pathname + u.search }, (pr) => {
      res.writeHead(pr.statusCode, { "content-type": "application/json" });
      pr.pipe(res);
    });
    up.on("error", (e) => { res.writeHead(502); res.end(JSON.stringify({ status: "error", error: String(e) })); });
    return;
  }
  const f = files[u.pathname];
  if (req.method !== "GET" || !f) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { "content-type": f[1] });
  fs.createReadStream(f[0]).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}/`;

// The flags that keep Chromium off the network here (no background
// services, no QUIC). Its sandbox stays on: run this as an unprivileged
// user (make dashboard-picture does); playwright gives it a fresh profile.
const flags = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync"];
let code = 0;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: flags });
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
  const qs = new URLSearchParams({ cluster: args.cluster, start: args.start, end: args.end, step: args.step, note: args.note || "" });
  await page.goto(base + "?" + qs);
  await page.waitForFunction(() => window.renderDone === true, null, { timeout: 60000 });
  const errors = await page.evaluate(() => window.renderErrors);
  if (errors.length) { console.error("render.mjs: queries failed:\n" + errors.join("\n")); code = 1; }
  await page.screenshot({ path: args.out, fullPage: true });
  console.log(`render.mjs: wrote ${args.out}`);
} finally {
  await browser.close();
  server.close();
}
process.exit(code);
