// Decoding a transaction the node sent as hex (block_get before it decoded transactions itself):
// a minimal msgpack reader (the canonical subset ledger/codec.py writes) and SHA-256 for its hash.
// The wire form is [chain_id, signer, nonce, kind, body, signature] (ledger/tx.py).

export function hexToBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
  return bytes;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** msgpack bytes -> value: bin as hex strings, integers as numbers (BigInt past 2^53). */
export function unpack(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  const need = (n) => {
    if (at + n > bytes.length) throw new Error("msgpack: truncated");
  };
  const uint = (n) => {
    need(n);
    let value = 0n;
    for (let i = 0; i < n; i += 1) value = (value << 8n) | BigInt(bytes[at + i]);
    at += n;
    return value;
  };
  const small = (v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v);
  const str = (n) => {
    need(n);
    const s = text.decode(bytes.subarray(at, at + n));
    at += n;
    return s;
  };
  const bin = (n) => {
    need(n);
    const s = bytesToHex(bytes.subarray(at, at + n));
    at += n;
    return s;
  };
  const array = (n) => Array.from({ length: n }, () => read());
  const map = (n) => {
    const out = {};
    for (let i = 0; i < n; i += 1) {
      const key = read();
      out[String(key)] = read();
    }
    return out;
  };
  function read() {
    need(1);
    const b = bytes[at++];
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if ((b & 0xf0) === 0x80) return map(b & 0x0f);
    if ((b & 0xf0) === 0x90) return array(b & 0x0f);
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(Number(uint(1)));
      case 0xc5: return bin(Number(uint(2)));
      case 0xc6: return bin(Number(uint(4)));
      case 0xcc: return Number(uint(1));
      case 0xcd: return Number(uint(2));
      case 0xce: return Number(uint(4));
      case 0xcf: return small(uint(8));
      case 0xd0: { need(1); const v = view.getInt8(at); at += 1; return v; }
      case 0xd1: { need(2); const v = view.getInt16(at); at += 2; return v; }
      case 0xd2: { need(4); const v = view.getInt32(at); at += 4; return v; }
      case 0xd3: { need(8); const v = view.getBigInt64(at); at += 8; return small(v); }
      case 0xd9: return str(Number(uint(1)));
      case 0xda: return str(Number(uint(2)));
      case 0xdb: return str(Number(uint(4)));
      case 0xdc: return array(Number(uint(2)));
      case 0xdd: return array(Number(uint(4)));
      case 0xde: return map(Number(uint(2)));
      case 0xdf: return map(Number(uint(4)));
      default: throw new Error(`msgpack: unsupported byte 0x${b.toString(16)}`);
    }
  }
  const value = read();
  if (at !== bytes.length) throw new Error("msgpack: trailing bytes");
  return value;
}

/** A transaction's wire hex -> {hash, chain_id, signer, nonce, kind, body}. */
export async function decodeTx(hex) {
  const bytes = hexToBytes(hex);
  const value = unpack(bytes);
  if (!Array.isArray(value) || value.length !== 6) throw new Error("not a transaction");
  const [chainId, signer, nonce, kind, body] = value;
  return { hash: await sha256Hex(bytes), chain_id: chainId, signer, nonce, kind, body };
}

// --- SHA-256: Web Crypto where the page is a secure context (https, localhost), else FIPS 180-4 ---

export async function sha256Hex(bytes) {
  if (window.crypto && window.crypto.subtle) {
    return bytesToHex(new Uint8Array(await window.crypto.subtle.digest("SHA-256", bytes)));
  }
  return sha256Plain(bytes);
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256Plain(bytes) {
  const length = bytes.length;
  const padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[length] = 0x80;
  const bits = BigInt(length) * 8n;
  const tail = new DataView(padded.buffer);
  tail.setBigUint64(padded.length - 8, bits);
  const hash = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let offset = 0; offset < padded.length; offset += 64) {
    for (let i = 0; i < 16; i += 1) w[i] = tail.getUint32(offset + i * 4);
    for (let i = 16; i < 64; i += 1) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = hash;
    for (let i = 0; i < 64; i += 1) {
      const s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + s1 + ch + K[i] + w[i]) >>> 0;
      const s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (s0 + maj) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    hash[0] += a; hash[1] += b; hash[2] += c; hash[3] += d; hash[4] += e; hash[5] += f; hash[6] += g; hash[7] += hh;
  }
  return Array.from(hash, (x) => x.toString(16).padStart(8, "0")).join("");
}
