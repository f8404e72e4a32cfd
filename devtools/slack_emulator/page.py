"""The emulator's page: the approvals channel as a person sees it, acting as one chosen person:
messages with their buttons, that person's ephemeral messages and open modals."""

import html
import re

_TOKEN = re.compile(r"<([^<>]+)>")


def mrkdwn(text: str) -> str:
    """Slack's markup as HTML: <url|label> links, <@U1> mentions, *bold*, `code`; &amp; &lt; &gt;
    are Slack's escapes for literal characters."""
    out, last = [], 0
    for match in _TOKEN.finditer(text or ""):
        out.append(_plain(text[last:match.start()]))
        inner = match.group(1)
        if inner.startswith("@"):
            out.append(f'<span class="mention">@{html.escape(inner[1:])}</span>')
        elif inner.startswith("!"):
            out.append(f'<span class="mention">@{html.escape(inner[1:].split("|")[0])}</span>')
        else:
            url, _, label = inner.partition("|")
            out.append(f'<a href="{html.escape(_unescape(url))}">{_plain(label or url)}</a>')
        last = match.end()
    out.append(_plain(text[last:]))
    return "".join(out).replace("\n", "<br>")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


EMOJI = {
    "white_check_mark": "\u2705", "ballot_box_with_check": "\u2611\ufe0f", "no_entry": "\u26d4", "moneybag": "\U0001f4b0",
    "x": "\u274c", "arrows_counterclockwise": "\U0001f504", "heavy_multiplication_x": "\u2716\ufe0f",
    "rotating_light": "\U0001f6a8", "robot_face": "\U0001f916", "alarm_clock": "\u23f0",
    "hourglass_flowing_sand": "\u23f3",
}


def _plain(text: str) -> str:
    escaped = html.escape(_unescape(text))
    escaped = re.sub(r":([a-z_]+):", lambda m: EMOJI.get(m.group(1), m.group(0)), escaped)
    escaped = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", escaped)
    return re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escaped)


def _text(obj) -> str:
    if not obj:
        return ""
    if obj.get("type") == "mrkdwn":
        return mrkdwn(obj.get("text", ""))
    return html.escape(obj.get("text", ""))


def render_blocks(blocks, *, user_id: str = "", ts: str = "") -> str:
    parts = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            parts.append(f'<h3>{_text(block.get("text"))}</h3>')
        elif kind == "section":
            fields = "".join(f"<div>{_text(f)}</div>" for f in block.get("fields") or [])
            parts.append(f'<div class="section">{_text(block.get("text"))}<div class="fields">{fields}</div></div>')
        elif kind == "context":
            parts.append('<div class="context">' + " ".join(_text(e) for e in block.get("elements") or []) + "</div>")
        elif kind == "actions":
            buttons = []
            for element in block.get("elements") or []:
                if element.get("type") != "button":
                    continue
                style = html.escape(element.get("style", ""))
                buttons.append(
                    '<form method="post" action="/_emulator/click">'
                    f'<input type="hidden" name="user" value="{html.escape(user_id)}">'
                    f'<input type="hidden" name="ts" value="{html.escape(ts)}">'
                    f'<input type="hidden" name="action_id" value="{html.escape(element.get("action_id", ""))}">'
                    f'<button type="submit" class="btn {style}">{_text(element.get("text"))}</button></form>'
                )
            parts.append('<div class="actions">' + "".join(buttons) + "</div>")
        elif kind == "divider":
            parts.append("<hr>")
    return "".join(parts)


def _modal(view: dict, user_id: str) -> str:
    spec = view["view"]
    inputs = []
    for block in spec.get("blocks") or []:
        if block.get("type") == "input":
            block_id = html.escape(block.get("block_id", ""))
            element = block.get("element") or {}
            error = view.get("errors", {}).get(block.get("block_id", ""))
            label = html.escape((block.get("label") or {}).get("text", ""))
            inputs.append(
                f'<label>{label}{"" if block.get("optional") else " *"}'
                f'<textarea name="value:{block_id}" rows="3"'
                f' placeholder="{html.escape((element.get("placeholder") or {}).get("text", ""))}"></textarea></label>'
                + (f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "")
            )
        else:
            inputs.append(render_blocks([block]))
    submit = html.escape((spec.get("submit") or {}).get("text", "Submit"))
    close = html.escape((spec.get("close") or {}).get("text", "Cancel"))
    return (
        f'<dialog open class="modal" aria-label="{html.escape((spec.get("title") or {}).get("text", ""))}">'
        f'<h2>{html.escape((spec.get("title") or {}).get("text", ""))}</h2>'
        '<form method="post" action="/_emulator/submit">'
        f'<input type="hidden" name="user" value="{html.escape(user_id)}">'
        f'<input type="hidden" name="view_id" value="{html.escape(view["id"])}">'
        + "".join(inputs) +
        f'<button type="submit" class="btn primary">{submit}</button></form>'
        '<form method="post" action="/_emulator/close">'
        f'<input type="hidden" name="user" value="{html.escape(user_id)}">'
        f'<input type="hidden" name="view_id" value="{html.escape(view["id"])}">'
        f'<button type="submit" class="btn">{close}</button></form></dialog>'
    )


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f8f8f8;color:#1d1c1d}
header{background:#3f0e40;color:#fff;padding:.7rem 1.2rem;display:flex;gap:1rem;align-items:center}
header form{margin-left:auto} main{max-width:860px;margin:1rem auto;padding:0 1rem}
.msg{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8rem 1rem;margin:.8rem 0}
.msg h3{margin:.2rem 0 .5rem}.context{color:#616061;font-size:.85rem;margin-top:.4rem}
.actions{display:flex;gap:.5rem;margin-top:.6rem}.actions form{margin:0}
.btn{border:1px solid #bbb;background:#fff;border-radius:4px;padding:.35rem .9rem;cursor:pointer;font-weight:600}
.btn.primary{background:#007a5a;color:#fff;border-color:#007a5a}.btn.danger{background:#e01e5a;color:#fff;border-color:#e01e5a}
.ephemeral{background:#fffbe6;border-color:#e8d48b}.ephemeral .who{color:#616061;font-size:.8rem}
.mention{background:#e8f5fa;color:#1264a3;border-radius:3px;padding:0 2px}
.notice{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:4px}
dialog.modal{position:fixed;top:15%;width:480px;border:1px solid #999;border-radius:8px;box-shadow:0 8px 30px #0004}
dialog textarea{display:block;width:100%;margin:.3rem 0 .8rem}.error{color:#c00;margin:-.5rem 0 .8rem}
.meta{color:#999;font-size:.75rem}
"""


def render_page(ws, user_id: str) -> str:
    options = "".join(
        f'<option value="{html.escape(u["id"])}"{" selected" if u["id"] == user_id else ""}>'
        f'{html.escape(u.get("real_name") or u["name"])} ({html.escape(u["id"])})</option>'
        for u in ws.users.values()
    )
    items = []
    for message in ws.messages.values():
        items.append(
            f'<article class="msg" data-ts="{html.escape(message["ts"])}">'
            + (render_blocks(message["blocks"], user_id=user_id, ts=message["ts"]) or mrkdwn(message["text"]))
            + f'<div class="meta">#{html.escape(message["channel"])} · {html.escape(message["ts"])}'
            + (" · edited" if message["updates"] else "") + "</div></article>"
        )
    for ephemeral in ws.ephemerals:
        if ephemeral["user"] == user_id:
            items.append(
                '<article class="msg ephemeral"><div class="who">Only visible to you</div>'
                + (render_blocks(ephemeral["blocks"]) or mrkdwn(ephemeral["text"])) + "</article>"
            )
    notice = ws.notices.get(user_id)
    modals = "".join(_modal(v, user_id) for v in ws.views.values() if v["user"] == user_id)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Slack emulator · #approvals</title>"
        f"<style>{STYLE}</style></head><body><header><strong>Slack emulator</strong><span>#approvals</span>"
        '<form method="get" action="/"><label>Acting as <select name="user" onchange="this.form.submit()">'
        f'{options}</select></label> <noscript><button>Switch</button></noscript></form></header><main>'
        + (f'<p class="notice" role="alert">{html.escape(notice)}</p>' if notice else "")
        + ("".join(items) or "<p>No messages yet.</p>")
        + modals + "</main></body></html>"
    )
