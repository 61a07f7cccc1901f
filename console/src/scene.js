// The swarm in 3D: every node in one instanced mesh (one draw call; a knowledge node is a
// sphere, an agent an octahedron, chosen per instance in the vertex shader), every edge in one
// line-segments buffer (one more). Positions arrive as slot-indexed typed arrays from the
// worker and are copied straight into the instance matrices: no object per node.
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { mergeGeometries } from "three/examples/jsm/utils/BufferGeometryUtils.js";
import { AGENT_FLAG, KNOWLEDGE_FLAG, applyToEdges, applyToMatrices } from "./frames.js";

const ONTOLOGY = [[0x04000000, 0xc084fc], [0x08000000, 0x4aa3ff], [0x10000000, 0xfb923c]];
const KNOWLEDGE_COLOUR = 0x4aa3ff;
const AGENT_COLOURS = {
  active: 0x36d399, busy: 0x36d399, running: 0x36d399, working: 0x36d399,
  idle: 0xa3a3a3, registered: 0xfacc15, spawning: 0xfacc15, initializing: 0xfacc15,
  error: 0xf87171, failed: 0xf87171, offline: 0x525252, terminated: 0x525252,
};
const PICK_RADIUS_PX = 12;
const FLIGHT_MS = 600;

function shapes() {
  const sphere = new THREE.IcosahedronGeometry(1, 1);
  const octahedron = new THREE.OctahedronGeometry(1.5);
  for (const [geometry, part] of [[sphere, 0], [octahedron, 1]]) {
    const count = geometry.getAttribute("position").count;
    geometry.setAttribute("part", new THREE.BufferAttribute(new Float32Array(count).fill(part), 1));
  }
  return mergeGeometries([sphere, octahedron]);
}

function material() {
  const m = new THREE.MeshLambertMaterial({ color: 0xffffff });
  m.onBeforeCompile = (shader) => {
    shader.vertexShader = shader.vertexShader
      .replace("#include <common>", "#include <common>\nattribute float part;\nattribute float kind;")
      .replace("#include <begin_vertex>",
        "#include <begin_vertex>\nif (abs(part - kind) > 0.5) transformed = vec3(0.0);");
  };
  return m;
}

export class Scene {
  constructor(container, { onHover, onDrag, onStats } = {}) {
    this.container = container;
    this.onHover = onHover || (() => {});
    this.onDrag = onDrag || (() => {});
    this.onStats = onStats || (() => {});
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(2, window.devicePixelRatio || 1));
    this.renderer.setClearColor(0x0f1216);
    container.prepend(this.renderer.domElement);
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(55, 1, 0.5, 50000);
    this.camera.position.set(0, 120, 420);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.enableDamping = false;
    this.controls.addEventListener("change", () => { this.dirty = true; });
    this.scene.add(new THREE.AmbientLight(0xffffff, 0.55));
    const sun = new THREE.DirectionalLight(0xffffff, 1.6);
    sun.position.set(1, 2, 3);
    this.scene.add(sun);
    this.geometry = shapes();
    this.material = material();
    this.mesh = null;
    this.capacity = 0;
    this._ensureCapacity(1024);
    this.edgeCapacity = 0;
    this.edges = null;
    this._ensureEdgeCapacity(2048);
    // the model: slots (from the worker), their metadata and looks, the edges as slot pairs
    this.count = 0;
    this.ids = new Uint32Array(0);
    this.xyz = new Float32Array(0);
    this.meta = new Map();
    this.edgeIds = [];
    this.pairs = new Int32Array(0);
    this.edgeCount = 0;
    this.filter = { swarm: "", type: "", knowledge: true, agents: true };
    this.visible = new Uint8Array(0);
    this.drawn = 0;
    this.fitted = false;
    this.flight = null;
    this.dirty = true;
    this.looksDirty = true;
    this._resize();
    new ResizeObserver(() => this._resize()).observe(container);
    this._pointer();
    const loop = (now) => {
      this._frame(now);
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  _ensureCapacity(needed) {
    if (needed <= this.capacity) return;
    let capacity = Math.max(1024, this.capacity);
    while (capacity < needed) capacity *= 2;
    const mesh = new THREE.InstancedMesh(this.geometry, this.material, capacity);
    mesh.instanceMatrix.setUsage(THREE.DynamicDrawUsage);
    mesh.instanceColor = new THREE.InstancedBufferAttribute(new Float32Array(capacity * 3), 3);
    const kind = new THREE.InstancedBufferAttribute(new Float32Array(capacity), 1);
    this.geometry.setAttribute("kind", kind);
    mesh.frustumCulled = false;
    mesh.count = 0;
    if (this.mesh) {
      this.scene.remove(this.mesh);
      this.mesh.dispose();
    }
    this.mesh = mesh;
    this.kind = kind;
    this.capacity = capacity;
    this.scene.add(mesh);
    this.looksDirty = true;
  }

  _ensureEdgeCapacity(needed) {
    if (needed <= this.edgeCapacity) return;
    let capacity = Math.max(2048, this.edgeCapacity);
    while (capacity < needed) capacity *= 2;
    const geometry = new THREE.BufferGeometry();
    const position = new THREE.BufferAttribute(new Float32Array(capacity * 6), 3);
    position.setUsage(THREE.DynamicDrawUsage);
    geometry.setAttribute("position", position);
    geometry.setDrawRange(0, 0);
    const lines = new THREE.LineSegments(geometry, new THREE.LineBasicMaterial({
      color: 0x56657a, transparent: true, opacity: 0.55 }));
    lines.frustumCulled = false;
    if (this.edges) {
      this.scene.remove(this.edges);
      this.edges.geometry.dispose();
    }
    this.edges = lines;
    this.edgeCapacity = capacity;
    this.scene.add(lines);
  }

  /** New positions from the worker (and the slot table, when it changed). */
  setPositions(count, xyz, ids) {
    this.count = count;
    this.xyz = xyz;
    if (ids) {
      this.ids = ids;
      this._ensureCapacity(count);
      this._rebuildPairs();
      this.looksDirty = true;
    }
    this.dirty = true;
  }

  /** Node metadata (wire id -> {label, kind, attrs...}) and edges (pairs of wire ids). */
  setGraph(meta, edgeIds) {
    this.meta = meta;
    this.edgeIds = edgeIds;
    this._rebuildPairs();
    this.looksDirty = true;
    this.dirty = true;
  }

  setFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    this.looksDirty = true;
    this.dirty = true;
  }

  slotOf(wireId) {
    for (let i = 0; i < this.count; i++) if (this.ids[i] === wireId) return i;
    return -1;
  }

  _rebuildPairs() {
    const slots = new Map();
    for (let i = 0; i < this.count; i++) slots.set(this.ids[i], i);
    const pairs = new Int32Array(this.edgeIds.length * 2);
    let n = 0;
    for (const [a, b] of this.edgeIds) {
      const sa = slots.get(a);
      const sb = slots.get(b);
      if (sa === undefined || sb === undefined) continue;
      pairs[2 * n] = sa;
      pairs[2 * n + 1] = sb;
      n++;
    }
    this.pairs = pairs;
    this.edgeCount = n;
    this._ensureEdgeCapacity(n);
  }

  _isVisible(wireId, info) {
    const agent = (wireId & AGENT_FLAG) !== 0;
    if (agent && !this.filter.agents) return false;
    if (!agent && !this.filter.knowledge) return false;
    if (!agent) return true;
    if (this.filter.swarm && info?.swarmId !== this.filter.swarm) return false;
    if (this.filter.type && info?.type !== this.filter.type) return false;
    return true;
  }

  _looks() {
    const matrices = this.mesh.instanceMatrix.array;
    const colours = this.mesh.instanceColor.array;
    const kinds = this.kind.array;
    const colour = new THREE.Color();
    if (this.visible.length < this.capacity) this.visible = new Uint8Array(this.capacity);
    let drawn = 0;
    for (let i = 0; i < this.count; i++) {
      const wireId = this.ids[i];
      const info = this.meta.get(wireId);
      const agent = (wireId & AGENT_FLAG) !== 0;
      const visible = this._isVisible(wireId, info);
      this.visible[i] = visible ? 1 : 0;
      drawn += visible ? 1 : 0;
      let scale = 0;
      if (visible) {
        if (agent) {
          const work = (Number(info?.tasks) || 0) * 0.4 + (Number(info?.cpu) || 0) * 1.5;
          scale = 2.2 * (1 + Math.min(2, work));
          colour.setHex(AGENT_COLOURS[String(info?.status || "").toLowerCase()] ?? 0xe5e7eb);
        } else {
          scale = 1.6;
          const ontology = ONTOLOGY.find(([flag]) => (wireId & flag) !== 0);
          colour.setHex(ontology ? ontology[1] : KNOWLEDGE_COLOUR);
        }
      }
      const m = i * 16;
      matrices.fill(0, m, m + 16);
      matrices[m] = scale;
      matrices[m + 5] = scale;
      matrices[m + 10] = scale;
      matrices[m + 15] = 1;
      colour.toArray(colours, i * 3);
      kinds[i] = agent ? 1 : 0;
    }
    this.kind.needsUpdate = true;
    this.mesh.instanceColor.needsUpdate = true;
    this.drawn = drawn;
    this.onStats({ drawn, edges: this.edgeCount });
  }

  _frame(now) {
    if (this.flight) this._fly(now);
    if (!this.dirty) return;
    this.dirty = false;
    if (this.looksDirty) {
      this.looksDirty = false;
      this._looks();
    }
    this.mesh.count = this.count;
    applyToMatrices(this.xyz, this.count, this.mesh.instanceMatrix.array);
    this.mesh.instanceMatrix.needsUpdate = true;
    const position = this.edges.geometry.getAttribute("position");
    applyToEdges(this.xyz, this.pairs, this.edgeCount, position.array);
    position.needsUpdate = true;
    this.edges.geometry.setDrawRange(0, this.edgeCount * 2);
    if (!this.fitted && this.count > 0) this._fit();
    this.controls.update();
    this.renderer.render(this.scene, this.camera);
  }

  _fit() {
    let r = 1;
    for (let i = 0; i < this.count * 3; i++) r = Math.max(r, Math.abs(this.xyz[i]));
    this.camera.position.set(0, r * 0.6, r * 2.4 + 40);
    this.controls.target.set(0, 0, 0);
    this.fitted = true;
  }

  _resize() {
    const { clientWidth: w, clientHeight: h } = this.container;
    if (!w || !h) return;
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.dirty = true;
  }

  /** The screen position (client pixels) of a node, or null when it is behind the camera. */
  screenPosition(wireId) {
    const slot = this.slotOf(wireId);
    if (slot < 0) return null;
    const v = new THREE.Vector3(this.xyz[slot * 3], this.xyz[slot * 3 + 1], this.xyz[slot * 3 + 2]);
    v.project(this.camera);
    if (v.z > 1) return null;
    const rect = this.renderer.domElement.getBoundingClientRect();
    return { x: rect.left + (v.x + 1) / 2 * rect.width, y: rect.top + (1 - v.y) / 2 * rect.height };
  }

  /** The visible node nearest to the pointer within a few pixels (nearest to the camera first). */
  pick(clientX, clientY) {
    const rect = this.renderer.domElement.getBoundingClientRect();
    const matrix = new THREE.Matrix4().multiplyMatrices(this.camera.projectionMatrix,
      this.camera.matrixWorldInverse).elements;
    let best = -1;
    let bestDepth = Infinity;
    const xyz = this.xyz;
    for (let i = 0; i < this.count; i++) {
      if (!this.visible[i]) continue;
      const x = xyz[3 * i], y = xyz[3 * i + 1], z = xyz[3 * i + 2];
      const w = matrix[3] * x + matrix[7] * y + matrix[11] * z + matrix[15];
      if (w <= 0) continue;
      const sx = rect.left + ((matrix[0] * x + matrix[4] * y + matrix[8] * z + matrix[12]) / w + 1) / 2 * rect.width;
      const sy = rect.top + (1 - (matrix[1] * x + matrix[5] * y + matrix[9] * z + matrix[13]) / w) / 2 * rect.height;
      if (Math.abs(sx - clientX) > PICK_RADIUS_PX || Math.abs(sy - clientY) > PICK_RADIUS_PX) continue;
      if (w < bestDepth) {
        bestDepth = w;
        best = i;
      }
    }
    return best < 0 ? null : this.ids[best];
  }

  flyTo(wireId) {
    const slot = this.slotOf(wireId);
    if (slot < 0) return false;
    const target = new THREE.Vector3(this.xyz[slot * 3], this.xyz[slot * 3 + 1], this.xyz[slot * 3 + 2]);
    const offset = this.camera.position.clone().sub(this.controls.target).setLength(60);
    this.flight = {
      start: performance.now(),
      fromPosition: this.camera.position.clone(), fromTarget: this.controls.target.clone(),
      toPosition: target.clone().add(offset), toTarget: target,
    };
    return true;
  }

  _fly(now) {
    const f = this.flight;
    const t = Math.min(1, (now - f.start) / FLIGHT_MS);
    const e = t < 0.5 ? 2 * t * t : 1 - (-2 * t + 2) ** 2 / 2;
    this.camera.position.lerpVectors(f.fromPosition, f.toPosition, e);
    this.controls.target.lerpVectors(f.fromTarget, f.toTarget, e);
    this.dirty = true;
    if (t >= 1) this.flight = null;
  }

  _pointer() {
    const canvas = this.renderer.domElement;
    const raycaster = new THREE.Raycaster();
    let press = null;
    let drag = null;
    let lastSent = 0;
    canvas.addEventListener("pointerdown", (event) => {
      const wireId = this.pick(event.clientX, event.clientY);
      press = { x: event.clientX, y: event.clientY, wireId };
      if (wireId !== null) {
        this.controls.enabled = false;  // a press on a node moves the node, not the camera
        canvas.setPointerCapture(event.pointerId);
      }
    });
    canvas.addEventListener("pointermove", (event) => {
      if (press && press.wireId !== null) {
        const moved = Math.hypot(event.clientX - press.x, event.clientY - press.y);
        if (!drag && moved > 4) {
          const slot = this.slotOf(press.wireId);
          const at = new THREE.Vector3(this.xyz[slot * 3], this.xyz[slot * 3 + 1], this.xyz[slot * 3 + 2]);
          const normal = this.camera.getWorldDirection(new THREE.Vector3());
          drag = { wireId: press.wireId, plane: new THREE.Plane().setFromNormalAndCoplanarPoint(normal, at) };
        }
        if (drag) {
          const rect = canvas.getBoundingClientRect();
          const ndc = new THREE.Vector2((event.clientX - rect.left) / rect.width * 2 - 1,
            -(event.clientY - rect.top) / rect.height * 2 + 1);
          raycaster.setFromCamera(ndc, this.camera);
          const hit = raycaster.ray.intersectPlane(drag.plane, new THREE.Vector3());
          if (hit && performance.now() - lastSent > 30) {
            lastSent = performance.now();
            this.onDrag(drag.wireId, hit.x, hit.y, hit.z);
          }
        }
        return;
      }
      const wireId = this.pick(event.clientX, event.clientY);
      this.onHover(wireId, event.clientX, event.clientY);
    });
    canvas.addEventListener("pointerup", (event) => {
      if (press && press.wireId !== null && !drag) this.flyTo(press.wireId);  // a click flies
      press = null;
      drag = null;
      this.controls.enabled = true;
      if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointerleave", () => this.onHover(null, 0, 0));
  }

  /** A PNG of what is drawn (the test artifact, and "save picture"). */
  snapshot() {
    this.renderer.render(this.scene, this.camera);
    return this.renderer.domElement.toDataURL("image/png");
  }
}

export { AGENT_FLAG, KNOWLEDGE_FLAG };
