// The /wss binary protocol v2 (docs/protocol.md), decoded straight into typed arrays.
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
