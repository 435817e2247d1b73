"""What the report needs of each stored image, read once and kept: its size, its A1111 `parameters`
text and a thumbnail. The PNG's header chunks are read without decoding pixels; a thumbnail is
made only for an image larger than the thumbnail box (a smaller one is shown as it is), once, on
first need. `report/thumbs/images.parquet` remembers all of it, so a rebuild opens no image again."""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ..store import atomic_write_bytes

THUMB_BOX = 256                       # thumbnails fit in THUMB_BOX x THUMB_BOX
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEAD_BYTES = 1 << 16                  # text chunks sit before the image data, well inside this
CACHE_SCHEMA = pa.schema([("image_id", pa.string()), ("image_path", pa.string()), ("width", pa.int64()),
                          ("height", pa.int64()), ("thumb", pa.string()), ("parameters", pa.string())])


@dataclass(frozen=True)
class PngHead:
    width: int
    height: int
    text: dict          # keyword -> text of tEXt, zTXt and iTXt chunks before the image data


def _text_chunk(kind: bytes, data: bytes) -> tuple[str, str] | None:
    key, _, rest = data.partition(b"\0")
    if kind == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":
        return key.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
    if kind == b"iTXt":
        compressed, rest = rest[0], rest[2:]
        _lang, _, rest = rest.partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        return key.decode("latin-1"), (zlib.decompress(text) if compressed else text).decode("utf-8")
    return None


def read_png_head(data: bytes) -> PngHead:
    """Size and text chunks of a PNG from its first bytes; raises ValueError if it is no PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, width, height, text = len(PNG_SIGNATURE), 0, 0, {}
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind in (b"IDAT", b"IEND") or len(body) < length:
            break
        else:
            item = _text_chunk(kind, body)
            if item:
                text[item[0]] = item[1]
        pos += 12 + length
    return PngHead(width, height, text)


def png_head(path: Path) -> PngHead:
    with open(path, "rb") as fh:
        data = fh.read(HEAD_BYTES)
    head = read_png_head(data)
    if len(data) == HEAD_BYTES and "parameters" not in head.text:   # a very long text chunk: read it all
        head = read_png_head(Path(path).read_bytes())
    return head


def thumb_path(report: Path, image_id: str) -> Path:
    return report / "thumbs" / "images" / image_id[:2] / f"{image_id}.jpg"


def make_thumbnail(source: Path, thumb: Path) -> None:
    with Image.open(source) as im:
        img = im.convert("RGB")
    img.thumbnail((THUMB_BOX, THUMB_BOX), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    thumb.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(thumb, buf.getvalue())


def image_facts(folder: Path, rows: pd.DataFrame, report: Path, keep=lambda path: None) -> pd.DataFrame:
    """One row per image of `rows` (image_id, image_path, width, height, thumb, parameters), in the
    rows' order. `thumb` is relative to the sweep folder: the original for an image that fits the
    thumbnail box, else report/thumbs/images/... (made here, once). `keep(path)` is told every
    thumbnail file in use."""
    cache_file = report / "thumbs" / "images.parquet"
    cached = pd.DataFrame(columns=CACHE_SCHEMA.names)
    if cache_file.exists():
        try:
            cached = pq.read_table(cache_file).to_pandas()
        except (OSError, pa.ArrowException):      # a damaged cache is rebuilt
            pass
    wanted = rows[["image_id", "image_path"]].dropna()
    known = cached[cached["image_id"].isin(set(wanted["image_id"]))]
    known = known.merge(wanted, on=["image_id", "image_path"])         # an image moved: read again
    fresh = []
    for image_id, image_path in wanted[~wanted["image_id"].isin(set(known["image_id"]))].itertuples(index=False):
        source = folder / image_path
        if not source.exists():
            continue
        head = png_head(source) if source.suffix.lower() == ".png" else None
        if head is None:
            with Image.open(source) as im:
                head = PngHead(im.width, im.height, {})
        thumb = image_path
        if max(head.width, head.height) > THUMB_BOX:
            target = thumb_path(report, image_id)
            if not target.exists():
                make_thumbnail(source, target)
            thumb = target.relative_to(folder).as_posix()
        fresh.append({"image_id": image_id, "image_path": image_path, "width": head.width,
                      "height": head.height, "thumb": thumb, "parameters": head.text.get("parameters")})
    facts = pd.concat([known, pd.DataFrame(fresh, columns=CACHE_SCHEMA.names)], ignore_index=True)
    facts = facts.drop_duplicates("image_id")
    if fresh or len(known) != len(cached):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(facts[CACHE_SCHEMA.names], schema=CACHE_SCHEMA, preserve_index=False)
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        atomic_write_bytes(cache_file, buf.getvalue().to_pybytes())
    keep(cache_file)
    for thumb in facts["thumb"]:
        if thumb.startswith("report/thumbs/"):
            keep(folder / thumb)
    return rows[["image_id"]].merge(facts.drop(columns="image_path"), on="image_id", how="left")
