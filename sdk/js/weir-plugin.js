// Weir plugins in JavaScript, built into WebAssembly components with componentize-js.
//
// A plugin module exports the functions of its world; the `define*` helpers build them
// from per-event callbacks, decoding and encoding the packed batch format for you:
//
//   import { defineFilter } from "weir-plugin";   // or defineTransform, defineRouter,
//                                                  // defineAcl, defineProcessor
//   export const { init, filter } = defineFilter({
//     init(config) { this.word = config.word ?? "hello"; },
//     keep(event, info) { return event.valueText()?.includes(this.word) ?? false; },
//   });
//
// `weir plugin build` bundles the module with this file and runs componentize-js;
// `run` (below) calls the same definition over events in plain Node, without WASM.
//
// Packed events (same format and errors as the Rust SDK's `weir_sdk::packed`,
// conformance vectors in sdk/vectors/packed.json): u32 count, then per event,
// little-endian: i64 timestamp-ms, u8 flags (bit 0: value is JSON text), i32 key-len
// (-1: none) + key, i32 value-len (-1: none) + value, u16 header-count, then per
// header u16 name-len + name (UTF-8) + u32 len + bytes.

export const FLAG_VALUE_JSON = 1;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Lossy = new TextDecoder("utf-8");
const toUtf8 = new TextEncoder();

/** A malformed packed buffer (the host and the guest disagree on the format). */
export class DecodeError extends Error {
  constructor(reason) {
    super(`malformed packed events: ${reason}`);
    this.reason = reason;
  }
}

/** The data is at fault: dead-lettered or rejected per the topic's policy. */
export class BadInput extends Error {}

/** One event: timestampMs (number), flags, key and value (Uint8Array or null),
 * headers ([name, Uint8Array] pairs).
 *
 * A decoded event is a view into its batch: `decode` only checks the batch's
 * structure and remembers where each event starts; a field is read when first asked
 * for. Most plugins look at one or two fields, and in the guest's JavaScript
 * interpreter every object and call counts (this halved a filter's cost per event). */
export class Event {
  constructor({ timestampMs = 0, flags = 0, key = null, value = null, headers = [] } = {}) {
    this._buf = null; // owned: the fields below hold the event
    this._ts = timestampMs;
    this._flags = flags;
    this._key = bytes(key);
    this._value = bytes(value);
    this._headers = headers.map(([n, v]) => [n, bytes(v)]);
  }
  // A decoded event reads from its batch (`_buf`, starting at `_at`, value at `_vo`
  // with length `_vl`, -1 when absent) until a field is set: then it owns them all.
  _own() {
    if (this._buf === null) return;
    const [ts, flags, key, value] = [this.timestampMs, this.flags, this.key, this.value];
    const headers = readHeaders(this._buf, this._at);
    this._buf = null;
    Object.assign(this, { _ts: ts, _flags: flags, _key: key, _value: value, _headers: headers });
  }
  get timestampMs() {
    return this._buf === null ? this._ts : readI64(this._buf, this._at);
  }
  set timestampMs(v) {
    this._own();
    this._ts = v;
  }
  get flags() {
    return this._buf === null ? this._flags : this._buf[this._at + 8];
  }
  set flags(v) {
    this._own();
    this._flags = v;
  }
  get key() {
    return this._buf === null ? this._key : field(this._buf, this._at + 9);
  }
  set key(v) {
    this._own();
    this._key = bytes(v);
  }
  get value() {
    if (this._buf === null) return this._value;
    return this._vl < 0 ? null : this._buf.subarray(this._vo, this._vo + this._vl);
  }
  set value(v) {
    this._own();
    this._value = bytes(v);
  }
  get headers() {
    if (this._buf === null) return this._headers;
    this._own(); // materialised once: a plugin may change the array it gets
    return this._headers;
  }
  set headers(pairs) {
    this._own();
    this._headers = pairs.map(([n, v]) => [n, bytes(v)]);
  }
  get valueIsJson() {
    return (this.flags & FLAG_VALUE_JSON) !== 0;
  }
  /** The value as text (null when absent). */
  valueText() {
    const v = this.value;
    return v === null ? null : utf8Lossy.decode(v);
  }
  keyText() {
    const k = this.key;
    return k === null ? null : utf8Lossy.decode(k);
  }
  /** The first header called `name`, or null. */
  header(name) {
    const h = this.headers.find(([n]) => n === name);
    return h ? h[1] : null;
  }
  /** A copy with some fields changed. */
  with(changes) {
    return new Event({
      timestampMs: this.timestampMs,
      flags: this.flags,
      key: this.key,
      value: this.value,
      headers: this.headers,
      ...changes,
    });
  }
}

function bytes(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return toUtf8.encode(v);
  return v instanceof Uint8Array ? v : new Uint8Array(v);
}

// Little-endian reads by hand: cheaper than DataView calls in an interpreter.
function readI32(b, at) {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24);
}
function readU32(b, at) {
  return readI32(b, at) >>> 0;
}
function readU16(b, at) {
  return b[at] | (b[at + 1] << 8);
}
function readI64(b, at) {
  return readU32(b, at) + readI32(b, at + 4) * 4294967296;
}
// A length-prefixed optional field (already validated by decode).
function field(b, at) {
  const n = readI32(b, at);
  return n === -1 ? null : b.subarray(at + 4, at + 4 + n);
}
function readHeaders(b, at) {
  const k = readI32(b, at + 9);
  at += 13 + (k > 0 ? k : 0);
  const v = readI32(b, at);
  at += 4 + (v > 0 ? v : 0);
  const count = readU16(b, at);
  at += 2;
  const out = [];
  for (let h = 0; h < count; h++) {
    const n = readU16(b, at);
    const name = utf8Lossy.decode(b.subarray(at + 2, at + 2 + n));
    at += 2 + n;
    const len = readU32(b, at);
    out.push([name, b.subarray(at + 4, at + 4 + len)]);
    at += 4 + len;
  }
  return out;
}

const PAST_END = "a field runs past the end";

/** Decodes a packed batch into Events; throws DecodeError. Checks the whole batch up
 * front (so a malformed one fails before the plugin sees any event); fields are read
 * lazily. */
export function decode(buf) {
  const end = buf.byteLength;
  if (end < 4) throw new DecodeError(PAST_END);
  const count = readU32(buf, 0);
  let at = 4;
  const events = [];
  for (let i = 0; i < count; i++) {
    const start = at;
    if (at + 13 > end) throw new DecodeError(PAST_END);
    const k = readI32(buf, at + 9);
    at += 13;
    if (k < -1) throw new DecodeError("negative length");
    if (k > 0) at += k;
    if (at + 4 > end) throw new DecodeError(PAST_END);
    const v = readI32(buf, at);
    at += 4;
    if (v < -1) throw new DecodeError("negative length");
    const vo = at;
    if (v > 0) at += v;
    if (at + 2 > end) throw new DecodeError(PAST_END);
    const hcount = readU16(buf, at);
    at += 2;
    for (let h = 0; h < hcount; h++) {
      if (at + 2 > end) throw new DecodeError(PAST_END);
      const n = readU16(buf, at);
      at += 2;
      if (at + n > end) throw new DecodeError(PAST_END);
      try {
        utf8.decode(buf.subarray(at, at + n));
      } catch {
        throw new DecodeError("header name is not UTF-8");
      }
      at += n;
      if (at + 4 > end) throw new DecodeError(PAST_END);
      at += 4 + readU32(buf, at);
    }
    if (at > end) throw new DecodeError(PAST_END);
    const e = Object.create(Event.prototype);
    e._buf = buf;
    e._at = start;
    e._vo = vo;
    e._vl = v;
    events.push(e);
  }
  if (at !== end) throw new DecodeError("trailing bytes after the last event");
  return events;
}

/** Packs Events (or plain objects of the same shape) into one Uint8Array. */
export function encode(events) {
  const names = events.map((e) => (e.headers ?? []).map(([n]) => toUtf8.encode(n)));
  let size = 4;
  events.forEach((e, i) => {
    size += 8 + 1 + 4 + (e.key?.length ?? 0) + 4 + (e.value?.length ?? 0) + 2;
    (e.headers ?? []).forEach(([, v], h) => (size += 2 + names[i][h].length + 4 + v.length));
  });
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, events.length, true);
  let at = 4;
  const put = (b) => {
    if (b === null || b === undefined) {
      view.setInt32(at, -1, true);
      at += 4;
    } else {
      view.setInt32(at, b.length, true);
      out.set(b, at + 4);
      at += 4 + b.length;
    }
  };
  events.forEach((e, i) => {
    view.setBigInt64(at, BigInt(e.timestampMs ?? 0), true);
    out[at + 8] = e.flags ?? 0;
    at += 9;
    put(bytes(e.key));
    put(bytes(e.value));
    const headers = e.headers ?? [];
    view.setUint16(at, headers.length, true);
    at += 2;
    headers.forEach(([, v], h) => {
      const n = names[i][h];
      view.setUint16(at, n.length, true);
      out.set(n, at + 2);
      at += 2 + n.length;
      const b = bytes(v);
      view.setUint32(at, b.length, true);
      out.set(b, at + 4);
      at += 4 + b.length;
    });
  });
  return out;
}

// The WIT's error contract: BadInput is `bad-input`, anything else `failed`.
function witError(e) {
  if (e instanceof BadInput) return { tag: "bad-input", val: e.message };
  return { tag: "failed", val: `${e?.name ?? "Error"}: ${e?.message ?? e}` };
}

function config(text) {
  return text && text.trim() ? JSON.parse(text) : {};
}

// Runs one batch, throwing the WIT error on failure (componentize-js turns a thrown
// value into the `result`'s error).
function batch(events, run) {
  try {
    return run(decode(events));
  } catch (e) {
    throw witError(e);
  }
}

function initOf(plugin) {
  return (text) => {
    try {
      plugin.init?.(config(text));
    } catch (e) {
      throw `${e?.name ?? "Error"}: ${e?.message ?? e}`;
    }
  };
}

/** A filter: `keep(event, info)` returns whether to keep each event. */
export function defineFilter(plugin) {
  return {
    kind: "filter",
    plugin,
    init: initOf(plugin),
    filter: (info, events) => batch(events, (evs) => evs.map((e) => !!plugin.keep(e, info))),
  };
}

/** A transform: `transform(event, info)` returns an Event, an array of them (0 drops,
 * 2+ fan out) or null (drops it). */
export function defineTransform(plugin) {
  const run = (info, evs) => {
    const out = [];
    const counts = new Uint32Array(evs.length);
    evs.forEach((e, i) => {
      const r = plugin.transform(e, info);
      const list = r === null || r === undefined ? [] : Array.isArray(r) ? r : [r];
      out.push(...list);
      counts[i] = list.length;
    });
    return { out, counts };
  };
  return {
    kind: "transform",
    plugin,
    run,
    init: initOf(plugin),
    transform: (info, events) =>
      batch(events, (evs) => {
        const { out, counts } = run(info, evs);
        return { events: encode(out), counts };
      }),
  };
}

/** A router: `route(event, info)` returns a topic, or an array whose items are
 * topics or `{ topic, key }` objects (another partition key there). */
export function defineRouter(plugin) {
  const run = (info, evs) => {
    const out = [];
    evs.forEach((e, i) => {
      const r = plugin.route(e, info);
      if (r === null || r === undefined) return;
      for (const d of Array.isArray(r) ? r : [r]) {
        const { topic, key } = typeof d === "string" ? { topic: d, key: null } : d;
        out.push({ event: i, topic, key: key === null || key === undefined ? undefined : bytes(key) });
      }
    });
    return out;
  };
  return {
    kind: "router",
    plugin,
    run,
    init: initOf(plugin),
    route: (info, events) => batch(events, (evs) => run(info, evs)),
  };
}

/** An ACL policy: `authorize(request)` returns true to allow, or the reason to deny. */
export function defineAcl(plugin) {
  return {
    kind: "acl",
    plugin,
    init: initOf(plugin),
    authorize(request) {
      try {
        const verdict = plugin.authorize(request);
        return verdict === true ? { tag: "allow" } : { tag: "deny", val: String(verdict || "denied") };
      } catch (e) {
        return { tag: "deny", val: `policy failed: ${e?.message ?? e}` };
      }
    },
  };
}

// Processors ------------------------------------------------------------------------

/** Keyed state in memory, with the shape of the `weir:plugin/keyed-state` import:
 * what `defineProcessor` is given in plain Node (tests). */
export function memoryKeyed() {
  const map = new Map(); // key as a latin1 string -> value bytes
  const timers = new Map();
  const k = (key) => String.fromCharCode(...bytes(key));
  return {
    timers,
    get: (key) => map.get(k(key)),
    put: (key, value) => void map.set(k(key), bytes(value)),
    remove: (key) => void map.delete(k(key)),
    scan(prefix, after, limit) {
      const p = k(prefix);
      const a = after === undefined || after === null ? null : k(after);
      return [...map.keys()]
        .filter((key) => key.startsWith(p) && (a === null || key > a))
        .sort()
        .slice(0, Number(limit))
        .map((key) => [Uint8Array.from(key, (c) => c.charCodeAt(0)), map.get(key)]);
    },
    setTimer: (key, atMs) => void timers.set(k(key), BigInt(atMs)),
    cancelTimer: (key) => void timers.delete(k(key)),
  };
}

/** The partition's keyed state as a processor sees it: bytes or strings for keys and
 * values, 8-byte big-endian counters, timers in milliseconds. */
export class Keyed {
  constructor(imports) {
    this.imports = imports;
  }
  get(key) {
    return this.imports.get(bytes(key)) ?? null;
  }
  put(key, value) {
    this.imports.put(bytes(key), bytes(value));
  }
  delete(key) {
    this.imports.remove(bytes(key));
  }
  /** Up to `limit` [key, value] pairs under `prefix`, after `after`. */
  scan(prefix, after = null, limit = 1000) {
    return this.imports.scan(bytes(prefix), after === null ? undefined : bytes(after), limit);
  }
  counter(key) {
    const v = this.get(key);
    return v && v.length === 8 ? Number(new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0)) : 0;
  }
  add(key, n = 1) {
    const v = this.counter(key) + n;
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v));
    this.put(key, b);
    return v;
  }
  take(key) {
    const v = this.counter(key);
    this.delete(key);
    return v;
  }
  /** Calls the processor's `fire(key, ctx)` once the broker's clock reaches `atMs`. */
  setTimer(key, atMs) {
    this.imports.setTimer(bytes(key), BigInt(atMs));
  }
  cancelTimer(key) {
    this.imports.cancelTimer(bytes(key));
  }
}

/** An event-time window, [startMs, endMs). */
export class Window {
  constructor(startMs, endMs) {
    this.startMs = Number(startMs);
    this.endMs = Number(endMs);
  }
  /** A state key for `key` in this window: its bounds, then the key. */
  stateKey(key) {
    const k = bytes(key) ?? new Uint8Array();
    const out = new Uint8Array(16 + k.length);
    const view = new DataView(out.buffer);
    view.setBigInt64(0, BigInt(this.startMs));
    view.setBigInt64(8, BigInt(this.endMs));
    out.set(k, 16);
    return out;
  }
}

/** What a processor's call sees (`info`: topic, partition, partitions, nowMs) and
 * emits into. */
class Context {
  constructor(info) {
    this.info = { ...info, nowMs: Number(info.nowMs ?? 0) };
    this.out = [];
  }
  /** Emits a record to one of the manifest's outputs: an object or array value is
   * stored as JSON, a string or bytes as they are. */
  emit(topic, value, { key = null, window = null, headers = [] } = {}) {
    const json = value !== null && typeof value === "object" && !(value instanceof Uint8Array);
    this.out.push({
      topic,
      key: key === null ? undefined : bytes(key),
      value: value === null ? undefined : bytes(json ? JSON.stringify(value) : value),
      json,
      headers: headers.map(([n, v]) => [n, bytes(v)]),
      window: window === null ? undefined : { startMs: BigInt(window.startMs), endMs: BigInt(window.endMs) },
    });
  }
}

function guarded(run) {
  try {
    return run();
  } catch (e) {
    throw witError(e);
  }
}

/** A stream processor: `process(input, ctx)` per on-time event (`input`: event,
 * timeMs, windows, merged), `close(key, window, ctx)` per closed window and key,
 * `fire(key, ctx)` per due timer, `eventTime(event)` for event times read from values
 * (with `event_time = "plugin"` in the manifest). `imports` is the
 * `weir:plugin/keyed-state@0.1.0` module (`memoryKeyed()` in plain Node); the plugin
 * reaches it as `this.keyed`. */
export function defineProcessor(plugin, imports) {
  plugin.keyed = new Keyed(imports);
  const win = (w) => new Window(w.startMs, w.endMs);
  return {
    kind: "processor",
    plugin,
    init: initOf(plugin),
    eventTimes: (events) =>
      batch(events, (evs) =>
        evs.map((e) => {
          const t = plugin.eventTime?.(e);
          return t === null || t === undefined ? undefined : BigInt(t);
        }),
      ),
    process(info, events, times, windows) {
      return batch(events, (evs) => {
        const ctx = new Context(info);
        let at = 0;
        evs.forEach((event, i) => {
          const own = [];
          const merged = [];
          while (at < windows.length && windows[at].event === i) {
            (windows[at].merged ? merged : own).push(win(windows[at].window));
            at += 1;
          }
          plugin.process({ event, timeMs: Number(times[i]), windows: own, merged }, ctx);
        });
        return ctx.out;
      });
    },
    closeWindows(info, closed) {
      return guarded(() => {
        const ctx = new Context(info);
        for (const c of closed) plugin.close?.(c.key, win(c.window), ctx);
        return ctx.out;
      });
    },
    fireTimers(info, keys) {
      return guarded(() => {
        const ctx = new Context(info);
        for (const key of keys) plugin.fire?.(key, ctx);
        return ctx.out;
      });
    },
  };
}

/** Runs a definition over events in plain Node, as the host would on one batch:
 * filters return the kept events, transforms the outputs, routers the destinations. */
export function run(definition, events, cfg = {}, info = { topic: "test", partitions: 1 }) {
  definition.init(JSON.stringify(cfg));
  const packed = encode(events.map((e) => (e instanceof Event ? e : new Event(e))));
  if (definition.kind === "filter") {
    const keep = definition.filter(info, packed);
    return decode(packed).filter((_, i) => keep[i]);
  }
  if (definition.kind === "transform") {
    return decode(definition.transform(info, packed).events);
  }
  if (definition.kind === "router") return definition.route(info, packed);
  throw new Error(`run does not run ${definition.kind} plugins; call authorize()`);
}
