// executor.mjs - the warm Node.js executor of Alyx functions.
//
// Runs many invocations, one at a time.  Reads newline-delimited JSON
// requests on stdin (docs/functions.md, "Protocol"):
//   {"request_id","function","file","input","context":{"auth","env",...}}
// and writes one response line per request on the protocol channel (fd
// ALYX_PROTO_FD when set, else stdout):
//   {"request_id","success":true,"output":...,"logs":[...],"duration_ms"}
//   {"request_id","success":false,"error":{"code","message","details"},
//    "logs":[...],"duration_ms"}
// The function's own console output never reaches the protocol channel:
// console.* during an invocation becomes log entries, anything else goes
// to stderr.
import { once } from "node:events";
import fs from "node:fs";
import { register } from "node:module";
import net from "node:net";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";

const here = path.dirname(new URL(import.meta.url).pathname);
/* libalyx says where functions find "@alyx/functions" (ALYX_SDK_URL): in
 * the sandbox the SDK is mounted at /node_modules; without one, a link
 * farm holds node_modules/@alyx/functions beside a link to the functions
 * directory (ALYX_FUNCTIONS_LINK), through which functions are imported
 * with --preserve-symlinks.  Node's own resolution finds it either way,
 * and the executor imports the SDK from that same URL (one instance: one
 * DbError class).  Otherwise module hooks do it (they cost a thread and
 * some 50-100 ms of start-up). */
const sdkUrl = process.env.ALYX_SDK_URL || pathToFileURL(path.join(here,
	"node_modules/@alyx/functions/index.mjs")).href;
const functionsDir = process.env.ALYX_FUNCTIONS_DIR || "";
const functionsLink = process.env.ALYX_FUNCTIONS_LINK || "";
if (!process.env.ALYX_SDK_URL)
	register(pathToFileURL(path.join(here, "hooks.mjs")).href, {
		data: { sdkUrl,
			functionsUrl: functionsDir ?
				pathToFileURL(functionsDir).href + "/" : null },
	});
const sdk = await import(sdkUrl);

let protoFd = process.env.ALYX_PROTO_FD ?
	Number(process.env.ALYX_PROTO_FD) : 1;
/* Requests arrive here: stdin, or in a container (the container runner,
 * ALYX_PROTO_SOCKET) the unix socket libalyx listens on, which then
 * carries the responses too. */
let input = process.stdin;
if (process.env.ALYX_PROTO_SOCKET) {
	input = net.connect(process.env.ALYX_PROTO_SOCKET);
	await once(input, "connect");
	protoFd = input._handle.fd;
	input.on("error", () => process.exit(0));
}
const maxOutput = Number(process.env.ALYX_MAX_OUTPUT) || 1 << 20;
const MAX_LOGS = 100;
const MAX_LOG_CHARS = 4096;

/* ---- the protocol channel -------------------------------------------- */

function writeAll(fd, s) {
	const buf = Buffer.from(s, "utf8");
	let off = 0;
	while (off < buf.length) {
		try {
			off += fs.writeSync(fd, buf, off, buf.length - off);
		} catch (e) {
			if (e.code !== "EAGAIN")
				throw e;
		}
	}
}

if (protoFd === 1) {
	/* stdout is the protocol: the function's writes go to stderr. */
	process.stdout.write = process.stderr.write.bind(process.stderr);
}

/* ---- logs ---------------------------------------------------------------- */

let current = null;	/* the running invocation's log list */

function text(v) {
	if (typeof v === "string")
		return v;
	if (v instanceof Error)
		return v.stack || String(v);
	try {
		return JSON.stringify(v);
	} catch {
		return String(v);
	}
}

function addLog(level, message, data) {
	if (!current) {
		process.stderr.write(`[${level}] ${message}\n`);
		return;
	}
	if (current.logs.length >= MAX_LOGS) {
		current.dropped++;
		return;
	}
	let msg = String(message);
	if (msg.length > MAX_LOG_CHARS)
		msg = msg.slice(0, MAX_LOG_CHARS) + "…";
	const e = { level, message: msg };
	if (data !== undefined) {
		try {
			const s = JSON.stringify(data);
			e.data = s !== undefined && s.length <= MAX_LOG_CHARS ?
				JSON.parse(s) : { truncated: true };
		} catch {
			e.data = { unserializable: true };
		}
	}
	current.logs.push(e);
}

const log = {
	debug: (m, d) => addLog("debug", m, d),
	info: (m, d) => addLog("info", m, d),
	warn: (m, d) => addLog("warn", m, d),
	error: (m, d) => addLog("error", m, d),
};

for (const [name, level] of [["log", "info"], ["info", "info"],
	["debug", "debug"], ["warn", "warn"], ["error", "error"],
	["trace", "debug"]]) {
	console[name] = (...args) => addLog(level, args.map(text).join(" "));
}

/* ---- modules (cached; reloaded when the file changes) --------------- */

const modules = new Map();	/* file -> {key, def} */

async function loadFunction(file) {
	const st = fs.statSync(file);
	const key = `${st.mtimeMs}:${st.size}`;
	const hit = modules.get(file);
	if (hit && hit.key === key)
		return hit.def;
	const via = functionsLink && functionsDir &&
		file.startsWith(functionsDir + "/") ?
		functionsLink + file.slice(functionsDir.length) : file;
	const mod = await import(pathToFileURL(via).href + "?v=" +
		encodeURIComponent(key));
	const def = mod.default;
	if (!def || typeof def.handler !== "function")
		throw Object.assign(new Error(
			`${path.basename(file)} must export default defineFunction({...})`),
		{ code: "INVALID_FUNCTION" });
	modules.set(file, { key, def });
	return def;
}

/* ---- ctx.db: the internal API over the pipe (or HTTP) --------------- */

const REPLY_PREFIX = '{"internal_reply":';
const pendingDb = new Map();	/* id -> {resolve, reject} */
let dbSeq = 0;

function pipeCall(token) {
	return (path, body) => new Promise((resolve, reject) => {
		const id = ++dbSeq;
		pendingDb.set(id, { resolve, reject });
		try {
			writeAll(protoFd, JSON.stringify({ internal: path, id, token,
				body }) + "\n");
		} catch (e) {
			pendingDb.delete(id);
			reject(e);
		}
	});
}

function takeReply(line) {
	let r;
	try {
		r = JSON.parse(line);
	} catch {
		return;
	}
	const p = pendingDb.get(r.internal_reply);
	if (!p)
		return;
	pendingDb.delete(r.internal_reply);
	if (r.ok)
		p.resolve(r.body);
	else
		p.reject(new sdk.DbError(r.error));
}

function httpCall(url, token) {
	return async (path, body) => {
		const res = await fetch(url + path, { method: "POST",
			headers: { "Content-Type": "application/json",
				Authorization: `Bearer ${token}` },
			body: JSON.stringify(body) });
		const j = await res.json().catch(() => ({}));
		if (!res.ok)
			throw new sdk.DbError(j.error || { code: "INTERNAL_ERROR",
				message: `HTTP ${res.status}` });
		return j;
	};
}

function dbOf(c) {
	const token = c.internal_token || "";
	return sdk.makeDb(c.db_transport === "http" && c.alyx_url ?
		httpCall(c.alyx_url, token) : pipeCall(token));
}

/* ---- one invocation -------------------------------------------------- */

function errorOf(e) {
	if (e && typeof e === "object") {
		const code = typeof e.code === "string" && /^[A-Z][A-Z0-9_]*$/.test(
			e.code) ? e.code : "FUNCTION_ERROR";
		let details = e.details && typeof e.details === "object" ?
			e.details : {};
		try {
			JSON.stringify(details);
		} catch {
			details = {};
		}
		return { code, message: String(e.message || e), details };
	}
	return { code: "FUNCTION_ERROR", message: String(e), details: {} };
}

async function invoke(req) {
	const t0 = performance.now();
	current = { logs: [], dropped: 0 };
	let res;
	try {
		if (typeof req.file !== "string")
			throw Object.assign(new Error("request has no file"),
				{ code: "BAD_REQUEST" });
		let def;
		try {
			def = await loadFunction(req.file);
		} catch (e) {
			if (e && e.code === "INVALID_FUNCTION")
				throw e;
			throw Object.assign(new Error(
				`cannot load ${req.function}: ${e && e.message || e}`),
			{ code: "LOAD_ERROR" });
		}
		const input = req.input === undefined ? {} : req.input;
		const fields = sdk.validateInput(def.input, input);
		if (fields.length)
			throw Object.assign(new Error(
				`invalid input: ${fields.map(f => f.message).join("; ")}`),
			{ code: "VALIDATION_ERROR", details: { fields } });
		const c = req.context || {};
		const ctx = {
			auth: c.auth || null,
			env: Object.freeze({ ...(c.env || {}) }),
			db: dbOf(c),
			log,
			requestId: req.request_id,
			function: req.function,
		};
		const output = await def.handler(input, ctx);
		res = { request_id: req.request_id, success: true,
			output: output === undefined ? null : output };
	} catch (e) {
		res = { request_id: req.request_id, success: false,
			error: errorOf(e) };
	}
	if (current.dropped)
		current.logs.push({ level: "warn",
			message: `${current.dropped} more log entries dropped` });
	res.logs = current.logs;
	current = null;
	res.duration_ms = Math.round((performance.now() - t0) * 1000) / 1000;
	let line;
	try {
		line = JSON.stringify(res);
	} catch (e) {
		line = undefined;
		res.success = false;
		res.error = { code: "BAD_OUTPUT",
			message: `output is not JSON: ${e.message}`, details: {} };
		delete res.output;
	}
	if (line === undefined || line.length > maxOutput) {
		if (line !== undefined) {
			res.success = false;
			res.error = { code: "OUTPUT_TOO_LARGE", message:
				`response is ${line.length} bytes, more than the ` +
				`${maxOutput} allowed`, details: { limit: maxOutput } };
			delete res.output;
			res.logs = res.logs.slice(0, 10);
		}
		line = JSON.stringify(res);
	}
	writeAll(protoFd, line + "\n");
}

/* ---- the request loop ------------------------------------------------- */

process.on("uncaughtException", (e) => {
	process.stderr.write(`alyx executor: uncaught: ${e && e.stack || e}\n`);
	process.exit(70);
});
process.on("unhandledRejection", (e) => {
	process.stderr.write(`alyx executor: unhandled rejection: ` +
		`${e && e.stack || e}\n`);
});

let pending = "";
const queue = [];
let busy = false;
let ended = false;

async function drain() {
	if (busy)
		return;
	busy = true;
	while (queue.length) {
		const line = queue.shift();
		let req;
		try {
			req = JSON.parse(line);
		} catch (e) {
			writeAll(protoFd, JSON.stringify({ request_id: null,
				success: false, error: { code: "BAD_REQUEST",
					message: `request is not JSON: ${e.message}`,
					details: {} }, logs: [], duration_ms: 0 }) + "\n");
			continue;
		}
		await invoke(req);
	}
	busy = false;
	if (ended)
		process.exit(0);
}

input.setEncoding("utf8");
input.on("data", (chunk) => {
	pending += chunk;
	let nl;
	while ((nl = pending.indexOf("\n")) >= 0) {
		const line = pending.slice(0, nl);
		pending = pending.slice(nl + 1);
		if (line.startsWith(REPLY_PREFIX))
			takeReply(line);
		else if (line.trim())
			queue.push(line);
	}
	drain();
});
input.on("end", () => {
	ended = true;
	if (!busy)
		process.exit(0);
});
