// The /wss binary protocols v2 and v3 (docs/protocol.md), decoded straight into typed arrays.
//
// A frame is one version byte (2) and k records of 36 bytes, little-endian:
//   id u32 (flags: bit 31 agent, bit 30 knowledge; the node id is id & 0x3fffffff),
//   position 3 x f32, velocity 3 x f32, sssp distance f32, sssp parent i32.
// A frame holds the nodes that moved (or all of them); each node keeps its slot, so applying a
// frame is: align the records (one copy), then one strided pass writing x, y, z into the slot.
// No object per node anywhere: that is what keeps a 20,000-node frame within a few ms.

export const VERSION = 2;
export const RECORD_BYTES = 36;
export const RECORD_WORDS = 9;
export const AGENT_FLAG = 0x80000000;
export const KNOWLEDGE_FLAG = 0x40000000;
export const ID_MASK = 0x3fffffff;

export class FrameError extends Error {}

/** Where every node is: slot i holds wire id ids[i] at xyz[3i..3i+2]. */
// Wire ids below this (flags and all: node ids up to DIRECT_IDS / 4 per kind) find their slot
// in a typed array, one load instead of a Map lookup; larger ids use the Map.
const DIRECT_IDS = 1 << 22;

/** The slot of a wire id: the flags pick a quarter of one Int32Array, the node id the entry. */
function directIndex(wireId) {
  const node = wireId & ID_MASK;
  if (node >= DIRECT_IDS / 4) return -1;
  return ((wireId >>> 30) & 3) * (DIRECT_IDS / 4) + node;
}

export class Positions {
  constructor(capacity = 1024) {
    this.count = 0;
    this.ids = new Uint32Array(capacity);
    this.xyz = new Float32Array(capacity * 3);
    this.slots = new Map();
    this.direct = new Int32Array(1024).fill(-1);
    this.scratch = new ArrayBuffer(RECORD_BYTES * 64);
  }

  slotOf(wireId) {
    const d = directIndex(wireId);
    if (d >= 0) {
      const slot = d < this.direct.length ? this.direct[d] : -1;
      return slot < 0 ? undefined : slot;
    }
    return this.slots.get(wireId);
  }

  _remember(wireId, slot) {
    const d = directIndex(wireId);
    if (d < 0) {
      this.slots.set(wireId, slot);
      return;
    }
    if (d >= this.direct.length) {
      let size = this.direct.length;
      while (size <= d) size *= 2;
      const direct = new Int32Array(size).fill(-1);
      direct.set(this.direct);
      this.direct = direct;
    }
    this.direct[d] = slot;
  }

  _grow(needed) {
    let capacity = this.ids.length;
    while (capacity < needed) capacity *= 2;
    if (capacity === this.ids.length) return;
    const ids = new Uint32Array(capacity);
    ids.set(this.ids);
    const xyz = new Float32Array(capacity * 3);
    xyz.set(this.xyz);
    this.ids = ids;
    this.xyz = xyz;
  }

  /**
   * Apply one frame; `offset` is 1 with the version byte (server frames), 0 without (the
   * records a client sends when dragging). Returns the number of records and of new ids.
   */
  apply(buffer, offset = 1) {
    const bytes = buffer.byteLength - offset;
    if (offset === 1) {
      const version = new Uint8Array(buffer, 0, 1)[0];
      if (version !== VERSION) throw new FrameError(`protocol version ${version}, expected ${VERSION}`);
    }
    if (bytes < 0 || bytes % RECORD_BYTES !== 0) {
      throw new FrameError(`frame of ${buffer.byteLength} bytes is not ${offset} + k*${RECORD_BYTES}`);
    }
    const records = bytes / RECORD_BYTES;
    if (this.scratch.byteLength < bytes) this.scratch = new ArrayBuffer(bytes * 2);
    new Uint8Array(this.scratch, 0, bytes).set(new Uint8Array(buffer, offset, bytes));
    const u = new Uint32Array(this.scratch, 0, records * RECORD_WORDS);
    const f = new Float32Array(this.scratch, 0, records * RECORD_WORDS);
    if (this.count + records > this.ids.length) this._grow(this.count + records);
    const ids = this.ids;
    const xyz = this.xyz;
    let direct = this.direct;
    let added = 0;
    for (let r = 0, w = 0; r < records; r++, w += RECORD_WORDS) {
      const id = u[w];
      const d = directIndex(id);
      let slot = d >= 0 ? (d < direct.length ? direct[d] : -1) : (this.slots.get(id) ?? -1);
      if (slot < 0) {
        slot = this.count++;
        this._remember(id, slot);
        direct = this.direct;
        ids[slot] = id;
        added++;
      }
      const p = slot * 3;
      xyz[p] = f[w + 1];
      xyz[p + 1] = f[w + 2];
      xyz[p + 2] = f[w + 3];
    }
    return { records, added };
  }

  /** Keep only the nodes in `keep` (a Set of wire ids), compacting the slots. */
  retain(keep) {
    let w = 0;
    const before = this.count;
    this.slots = new Map();
    this.direct.fill(-1);
    for (let r = 0; r < before; r++) {
      const id = this.ids[r];
      if (!keep.has(id)) continue;
      this.ids[w] = id;
      this.xyz[w * 3] = this.xyz[r * 3];
      this.xyz[w * 3 + 1] = this.xyz[r * 3 + 1];
      this.xyz[w * 3 + 2] = this.xyz[r * 3 + 2];
      this._remember(id, w);
      w++;
    }
    this.count = w;
    return w !== before;
  }
}

// Protocol v3 (docs/protocol.md): a keyframe fixes the node order and quantized positions
// (u16 per axis: origin + q * step), deltas name nodes by index (bitmap or LEB128 gaps) and
// carry i8 moves or absolute u16 coordinates. Sections start at multiples of 4 bytes, so each
// is read as a typed array over the frame itself.
export const VERSION3 = 3;
const KEY = 1;
const DELTA = 2;
const GAPS = 1;

/** The v3 state a client holds (key, seq, the keyframe's order and quantized coordinates),
 *  written through into a Positions store: only the nodes a frame names are touched. */
export class V3State {
  constructor() {
    this.key = null;
    this.seq = 0;
    this.n = 0;
    this.q = new Uint16Array(0);
    this.ids = new Uint32Array(0); // the keyframe's order
    this.slot = new Int32Array(0); // keyframe index -> Positions slot
    this.origin = 0;
    this.step = 1;
  }

  /** The state to resume from after a reconnect, or null. */
  get at() {
    return this.key === null ? null : { key: this.key, seq: this.seq };
  }

  reset() {
    this.key = null;
  }

  /** Apply a v3 frame (an ArrayBuffer) into `positions`; returns { records, added }. */
  apply(buffer, positions) {
    if (buffer.byteLength < 12) throw new FrameError(`v3 frame of ${buffer.byteLength} bytes`);
    const head = new DataView(buffer);
    const version = head.getUint8(0);
    if (version !== VERSION3) throw new FrameError(`protocol version ${version}, expected 3`);
    const kind = head.getUint8(1);
    const flags = head.getUint16(2, true);
    const key = head.getUint32(4, true);
    const seq = head.getUint32(8, true);
    if (kind === KEY) return this._key(buffer, head, key, seq, positions);
    if (kind === DELTA) return this._delta(buffer, head, flags, key, seq, positions);
    throw new FrameError(`unknown v3 frame kind ${kind}`);
  }

  _key(buffer, head, key, seq, positions) {
    if (buffer.byteLength < 32) throw new FrameError("keyframe shorter than its header");
    const n = head.getUint32(12, true);
    const size = 32 + 10 * n;
    if (buffer.byteLength !== size + ((4 - (size % 4)) % 4)) {
      throw new FrameError(`keyframe of ${n} nodes is ${buffer.byteLength} bytes`);
    }
    const origin = head.getFloat32(16, true);
    const step = head.getFloat32(28, true);
    if (origin !== head.getFloat32(20, true) || origin !== head.getFloat32(24, true) || !(step > 0)) {
      throw new FrameError("keyframe: the box must be a cube with a positive step");
    }
    this.ids = new Uint32Array(buffer.slice(32, 32 + 4 * n));
    this.q = new Uint16Array(buffer.slice(32 + 4 * n, 32 + 10 * n));
    Object.assign(this, { key, seq, n, origin, step });
    const added = this.rebind(positions);
    return { records: n, added };
  }

  /** Map each keyframe index to its slot (adding the ids the store lacks) and write every
   *  node's position: after a keyframe, and after the store's slots were compacted
   *  (Positions.retain), which moves them. Returns the number of ids added. */
  rebind(positions) {
    const n = this.n;
    if (this.key === null) return 0;
    this.slot = new Int32Array(n);
    let added = 0;
    if (positions.count + n > positions.ids.length) positions._grow(positions.count + n);
    for (let i = 0; i < n; i++) {
      let slot = positions.slotOf(this.ids[i]);
      if (slot === undefined) {
        slot = positions.count++;
        positions._remember(this.ids[i], slot);
        positions.ids[slot] = this.ids[i];
        added++;
      }
      this.slot[i] = slot;
    }
    this._write(positions, null, n);
    return added;
  }

  _delta(buffer, head, flags, key, seq, positions) {
    if (buffer.byteLength < 28) throw new FrameError("delta shorter than its header");
    const base = head.getUint32(12, true);
    const n = head.getUint32(16, true);
    const count = head.getUint32(20, true);
    const far = head.getUint32(24, true);
    if (key !== this.key || base !== this.seq || n !== this.n) {
      throw new FrameError(`delta ${key}:${base} does not apply to state ${this.key}:${this.seq}`);
    }
    if (count > n || far > count) throw new FrameError("delta: more changed nodes than nodes");
    const bytes = new Uint8Array(buffer);
    const index = new Int32Array(count);
    let at = 28;
    if (flags & GAPS) {
      let last = -1;
      for (let k = 0; k < count; k++) {
        let value = 0;
        let shift = 0;
        let byte;
        do {
          if (at >= bytes.length || shift > 28) throw new FrameError("delta: bad index gaps");
          byte = bytes[at++];
          value += (byte & 0x7f) * 2 ** shift;
          shift += 7;
        } while (byte >= 0x80);
        last += value + 1;
        if (last >= n) throw new FrameError("delta: an index beyond the nodes");
        index[k] = last;
      }
    } else {
      if (at + ((n + 7) >> 3) > bytes.length) throw new FrameError("delta: bitmap ends early");
      let k = 0;
      for (let b = 0; b < (n + 7) >> 3; b++) {
        let bits = bytes[at + b];
        while (bits) {
          const low = bits & -bits;
          if (k >= count) throw new FrameError("delta: more indices than its count");
          index[k++] = b * 8 + 31 - Math.clz32(low);
          bits ^= low;
        }
      }
      if (k !== count) throw new FrameError("delta: fewer indices than its count");
      at += (n + 7) >> 3;
    }
    if (count && index[count - 1] >= n) throw new FrameError("delta: an index beyond the nodes");
    at += (4 - (at % 4)) % 4;
    const marks = at;
    at += (count + 7) >> 3;
    at += (4 - (at % 4)) % 4;
    const nearAt = at;
    at += 3 * (count - far);
    at += (4 - (at % 4)) % 4;
    const farAt = at;
    const end = farAt + 6 * far;
    if (buffer.byteLength !== end + ((4 - (end % 4)) % 4)) {
      throw new FrameError(`delta is ${buffer.byteLength} bytes, expected ${end + ((4 - (end % 4)) % 4)}`);
    }
    const moves = new Int8Array(buffer, nearAt, 3 * (count - far));
    const absolute = new Uint16Array(buffer, farAt, 3 * far);
    const q = this.q;
    // Check everything before changing anything: a bad frame leaves the state as it was.
    let marked = 0;
    for (let k = 0, near = 0; k < count; k++) {
      if (bytes[marks + (k >> 3)] >> (k & 7) & 1) {
        marked++;
        continue;
      }
      const p = index[k] * 3;
      for (let a = 0; a < 3; a++) {
        const c = q[p + a] + moves[near++];
        if (c < 0 || c > 65535) throw new FrameError("delta: a move leaves the box");
      }
    }
    if (marked !== far) throw new FrameError("delta: the far marks do not match its count");
    let near = 0;
    let farK = 0;
    for (let k = 0; k < count; k++) {
      const p = index[k] * 3;
      if (bytes[marks + (k >> 3)] >> (k & 7) & 1) {
        q[p] = absolute[farK++];
        q[p + 1] = absolute[farK++];
        q[p + 2] = absolute[farK++];
      } else {
        q[p] += moves[near++];
        q[p + 1] += moves[near++];
        q[p + 2] += moves[near++];
      }
    }
    this.seq = seq;
    this._write(positions, index, count);
    return { records: count, added: 0 };
  }

  /** The named keyframe indices' (all when `index` is null) coordinates into their slots. */
  _write(positions, index, count) {
    const { q, slot, origin, step } = this;
    const xyz = positions.xyz;
    for (let k = 0; k < count; k++) {
      const i = index === null ? k : index[k];
      const p = slot[i] * 3;
      const c = i * 3;
      xyz[p] = origin + q[c] * step;
      xyz[p + 1] = origin + q[c + 1] * step;
      xyz[p + 2] = origin + q[c + 2] * step;
    }
  }
}

/** Write each slot's position into an InstancedMesh's matrices (translation only: the scale
 *  and rotation entries are set when the node's looks change). */
export function applyToMatrices(xyz, count, matrices) {
  for (let i = 0, p = 0, m = 12; i < count; i++, p += 3, m += 16) {
    matrices[m] = xyz[p];
    matrices[m + 1] = xyz[p + 1];
    matrices[m + 2] = xyz[p + 2];
  }
}

/** Edge endpoints (pairs of slots) into a LineSegments position buffer. */
export function applyToEdges(xyz, pairs, edgeCount, positions) {
  for (let e = 0, q = 0; e < edgeCount; e++, q += 6) {
    const a = pairs[2 * e] * 3;
    const b = pairs[2 * e + 1] * 3;
    positions[q] = xyz[a];
    positions[q + 1] = xyz[a + 1];
    positions[q + 2] = xyz[a + 2];
    positions[q + 3] = xyz[b];
    positions[q + 4] = xyz[b + 1];
    positions[q + 5] = xyz[b + 2];
  }
}

/** One drag record, as the original browser client sent it: no version byte. */
export function dragRecord(wireId, x, y, z) {
  const buffer = new ArrayBuffer(RECORD_BYTES);
  const view = new DataView(buffer);
  view.setUint32(0, wireId >>> 0, true);
  view.setFloat32(4, x, true);
  view.setFloat32(8, y, true);
  view.setFloat32(12, z, true);
  view.setFloat32(28, Infinity, true);
  view.setInt32(32, -1, true);
  return buffer;
}
