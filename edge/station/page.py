"""The station page and the part page: HTML with inline CSS and script, system fonts, no network.

Laid out for a 1280×800 panel: live part and its verdict on the left; counters, rates, latency,
the score trend and the last NG parts on the right; operator feedback along the bottom.
"""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote

from .state import Part

CSS = """
*{box-sizing:border-box}body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
background:#15181c;color:#e8eaed;font-size:15px}
header{display:flex;align-items:center;gap:14px;padding:6px 14px;background:#0c0e10;height:44px;flex:none}
header h1{font-size:18px;margin:0;font-weight:600}.muted{color:#9aa0a6}
.badge{padding:3px 10px;border-radius:4px;font-weight:700}.ready{background:#1e8e3e}.notready{background:#c5221f}
.steady{background:#2d3136}.learning{background:#2d3136;color:#9aa0a6}.warning{background:#e37400}.alarm{background:#c5221f}
body{height:100vh;display:flex;flex-direction:column;min-height:560px}
main{display:grid;grid-template-columns:minmax(420px,650px) 1fr;grid-template-rows:minmax(0,1fr);gap:12px;padding:10px 14px;flex:1;min-height:0}
.panel{background:#1f2327;border-radius:6px;padding:10px}
#live{display:flex;flex-direction:column;gap:8px;min-height:0;overflow:hidden}
#liveimg{width:100%;flex:1;min-height:0;object-fit:contain;background:#000;border-radius:4px}
#verdict{display:flex;align-items:center;gap:16px}
#decision{font-size:64px;font-weight:800;width:230px;text-align:center;border-radius:6px;padding:4px 0}
.OK{background:#1e8e3e}.NG{background:#c5221f}.ERROR{background:#e37400}.NONE{background:#2d3136}
#scoreline{font-size:22px}#bar{height:14px;background:#2d3136;border-radius:7px;position:relative;margin-top:6px;width:360px}
#barfill{height:100%;border-radius:7px;background:#8ab4f8;width:0}
#barthr{position:absolute;top:-4px;bottom:-4px;width:3px;background:#fff;left:50%}
#right{display:flex;flex-direction:column;gap:10px;min-width:0;min-height:0;overflow:hidden}
.counters{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}
.counter{background:#2d3136;border-radius:5px;padding:6px 10px}.counter b{display:block;font-size:30px}
.counter small{color:#9aa0a6}.counter.ng b{color:#f28b82}.counter.err b{color:#fdd663}
.rates{display:grid;grid-template-columns:repeat(3,1fr);gap:8px}
.over{color:#f28b82}
#trend{width:100%;height:120px;background:#111416;border-radius:4px;display:block}
#gallery{display:grid;grid-template-columns:repeat(6,1fr);gap:6px}
#gallery a{display:block;color:#e8eaed;text-decoration:none;font-size:11px;text-align:center;white-space:nowrap;overflow:hidden}
#gallery img{width:100%;aspect-ratio:1;object-fit:cover;border-radius:3px;border:2px solid #c5221f;background:#000}
footer{display:flex;gap:12px;align-items:center;padding:8px 14px;background:#0c0e10;height:84px;flex:none}
button{flex:none;white-space:nowrap;font-size:16px;padding:10px 16px;border-radius:5px;border:0;background:#8ab4f8;color:#111;font-weight:600;cursor:pointer}
button.warn{background:#f28b82}button:disabled{opacity:.4;cursor:default}
input{flex:none;font-size:15px;padding:8px;border-radius:4px;border:1px solid #5f6368;background:#2d3136;color:#e8eaed;width:140px}
#status{flex:1;min-width:0;font-size:12px;color:#9aa0a6;max-height:72px;overflow:hidden;line-height:1.35}
#status div{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}#job{color:#e8eaed}
h2{font-size:14px;margin:0 0 6px;color:#9aa0a6;font-weight:600;text-transform:uppercase;letter-spacing:.04em}
"""

SCRIPT = r"""
const Q=new URLSearchParams(location.search),TOKEN=Q.get('token')||'';
function u(p){return TOKEN?p+(p.includes('?')?'&':'?')+'token='+encodeURIComponent(TOKEN):p}
function $(id){return document.getElementById(id)}
function esc(t){return String(t).replace(/[&<>"']/g,c=>'&#'+c.charCodeAt(0)+';')}
function pct(v){return v==null?'–':(100*v).toFixed(1)+'%'}
function ms(v){return v==null?'–':v.toFixed(0)+' ms'}
let lastSeq=-1,liveBusy=false,liveUrl=null,lastGallery='';
async function live(seq){ // fetch the picture whole, then swap it in: no flicker, no half-drawn frame
  if(liveBusy) return; liveBusy=true;
  try{const r=await fetch(u('/live.jpg?seq='+seq),{cache:'no-store'});
    if(r.ok){const url=URL.createObjectURL(await r.blob());$('liveimg').src=url;if(liveUrl) URL.revokeObjectURL(liveUrl);liveUrl=url;}}
  catch(e){} finally{liveBusy=false;}
}
function trend(pts,hours){
  const W=600,H=130,svg=$('trend');let max=2;
  for(const p of pts) if(p[1]>max) max=Math.min(p[1],10);
  const span=Math.max(60,Math.min(hours*3600,pts.length?pts[0][0]:60));
  const x=a=>W-(a/span)*W, y=s=>H-4-(Math.min(s,max)/max)*(H-8);
  let ok='',ng='';
  for(const p of pts){const c=`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="2"/>`;
    if(p[2]==='NG') ng+=c; else ok+=c;}
  const ty=y(1).toFixed(1);
  const mins=Math.round(span/60);
  svg.innerHTML=`<line x1="0" x2="${W}" y1="${ty}" y2="${ty}" stroke="#fff" stroke-dasharray="6 4"/>`+
    `<text x="4" y="${ty-4}" fill="#fff" font-size="11">threshold 1.0</text>`+
    `<g fill="#8ab4f8">${ok}</g><g fill="#f28b82">${ng}</g>`+
    `<text x="4" y="${H-6}" fill="#9aa0a6" font-size="11">${mins} min ago</text>`+
    `<text x="${W-4}" y="${H-6}" fill="#9aa0a6" font-size="11" text-anchor="end">now</text>`+
    `<text x="${W-4}" y="12" fill="#9aa0a6" font-size="11" text-anchor="end">score ${max.toFixed(1)}</text>`;
}
async function refresh(){
  let s;
  try{const r=await fetch(u('/api/state'),{cache:'no-store'});s=await r.json();}
  catch(e){$('conn').textContent='no connection to the station';$('conn').className='badge notready';return;}
  $('conn').textContent='';$('conn').className='';
  $('ready').textContent=s.ready?'READY':'NOT READY';$('ready').className='badge '+(s.ready?'ready':'notready');
  $('inspector').textContent='inspector '+s.inspector;
  const d=s.drift;$('drift').textContent=d?('drift: '+d.state+(d.shift!=null?' ('+d.shift.toFixed(1)+')':'')):'drift: off';
  $('drift').className='badge '+(d?d.state:'learning');
  for(const k of ['OK','NG','ERROR']) $('n'+k).textContent=s.counts[k];
  $('ngrate').textContent=pct(s.ng_rate);
  $('fps').textContent=s.throughput_per_s.toFixed(1)+' /s';
  const L=s.latency,b=L.budget_ms;
  $('p50').textContent=ms(L.p50_ms);$('p99').textContent=ms(L.p99_ms);
  $('p99').className=(b&&L.p99_ms>b)?'over':'';$('budget').textContent=b?('(budget '+b.toFixed(0)+' ms)'):'';
  const l=s.latest;
  if(l){$('decision').textContent=l.decision;$('decision').className=l.decision;
    $('score').textContent=l.score==null?(l.error||''):('score '+l.score.toFixed(2)+' / threshold 1.00');
    $('barfill').style.width=(l.score==null?0:Math.min(100,50*l.score))+'%';
    $('barfill').style.background=l.decision==='NG'?'#f28b82':'#81c995';
    $('livecap').textContent=l.image+'  ·  '+l.timestamp.slice(11,19);
    if(l.seq!==lastSeq){lastSeq=l.seq;live(l.seq);$('missed').dataset.seq=l.seq;}
    $('missed').disabled=!s.feedback;}
  const gal=s.gallery.map(g=>`<a href="${u('/part/'+g.seq)}" title="${esc(g.image)}" data-kept="${g.has_image?1:0}">`+
    (g.has_overlay?`<img alt="NG part ${g.seq}" src="${u('/part/'+g.seq+'/overlay.jpg')}">`:'<img alt="">')+
    `${g.score==null?'':g.score.toFixed(2)} · ${g.timestamp.slice(11,19)}</a>`).join('')||'<span class="muted">no NG part yet</span>';
  if(gal!==lastGallery){lastGallery=gal;$('gallery').innerHTML=gal;}  // rebuilt only when it changed
  trend(s.trend,s.trend_hours);
  const f=s.feedback;
  if(f){$('pending').textContent=f.pending_good+' marked good';$('refit').disabled=!!f.refit_refused||!f.pending_good||f.job.state==='running';
    if(f.refit_refused)$('refit').title=f.refit_refused;
    $('undo').disabled=!f.can_undo||f.job.state==='running';
    $('job').textContent=f.job.state==='idle'?'':(f.job.action+': '+f.job.state+(f.job.result?' – '+f.job.result:''));}
  $('events').innerHTML=s.events.slice(-3).reverse().map(e=>`<div>${esc(e.time.slice(11))} ${esc(e.kind)}${e.state?' '+esc(e.state):''}`+
    `${e.operator?' by '+esc(e.operator):''}${e.note?' – '+esc(e.note):''}${e.result?' – '+esc(e.result):''}</div>`).join('');
  $('nStamp').textContent=s.total;
}
async function act(path){
  const body=new URLSearchParams({operator:$('operator').value,note:$('note').value});
  const r=await fetch(u(path),{method:'POST',body});const j=await r.json();
  $('job').textContent=j.ok?'done: '+(j.action||'')+(j.result?' '+j.result:''):j.error;refresh();
}
$('refit').onclick=()=>act('/refit');$('undo').onclick=()=>act('/undo');
$('missed').onclick=()=>act('/part/'+$('missed').dataset.seq+'/missed');
refresh();setInterval(refresh,REFRESH_MS);
"""


def station_page(station: str, refresh_ms: int = 1000) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=1280"><title>{escape(station)} – edge-inspect</title>
<noscript><meta http-equiv="refresh" content="5"></noscript><style>{CSS}</style></head><body>
<header><h1>{escape(station)}</h1><span id="ready" class="badge notready" title="READY: camera and inspector are up; the READY GPIO line says the same">NOT READY</span>
<span id="drift" class="badge learning" title="Drift: the median score of recent OK parts against the good parts fit saw, in spreads of those (warning at 1.5, alarm at 3 by default). Lighting, lens or a new material batch move it.">drift</span><span id="inspector" class="muted"></span>
<span id="conn"></span><span class="muted" style="margin-left:auto">parts: <b id="nStamp">0</b></span></header>
<main><section id="live" class="panel"><img id="liveimg" alt="latest part with heat map">
<div class="muted" id="livecap">waiting for the first part…</div>
<div id="verdict"><div id="decision" class="NONE">–</div><div><div id="scoreline"><span id="score"></span></div>
<div id="bar"><div id="barfill"></div><div id="barthr" title="threshold"></div></div>
<div class="muted" style="font-size:12px;margin-top:4px">bar: score, the white mark is the threshold (1.0)</div></div></div>
</section><section id="right">
<div class="panel"><div class="counters">
<div class="counter"><small>OK</small><b id="nOK">0</b></div><div class="counter ng"><small>NG</small><b id="nNG">0</b></div>
<div class="counter err"><small>ERROR</small><b id="nERROR">0</b></div><div class="counter"><small>NG rate</small><b id="ngrate">–</b></div>
</div><div class="rates" style="margin-top:8px">
<div class="counter"><small>throughput</small><b id="fps">–</b></div>
<div class="counter"><small>latency p50</small><b id="p50">–</b></div>
<div class="counter"><small>p99 <span id="budget"></span></small><b id="p99">–</b></div></div></div>
<div class="panel"><h2>Score trend (white line: threshold)</h2><svg id="trend" viewBox="0 0 600 130" preserveAspectRatio="none"></svg></div>
<div class="panel" style="flex:1;overflow:hidden"><h2>Last NG parts (click for the full record)</h2><div id="gallery"></div></div>
</section></main>
<footer><input id="operator" placeholder="operator"><input id="note" placeholder="note" style="width:200px">
<button id="missed" class="warn" disabled title="file the live part as a missed defect (labelled NG for calibrate)">Missed defect</button>
<button id="refit" disabled title="add the parts marked good to the inspector (fit --update) and swap it in">Refit with feedback</button>
<button id="undo" disabled title="go back to the inspector before the last refit">Undo refit</button>
<div id="status"><div><span id="pending"></span> <span id="job"></span></div><div id="events"></div></div></footer>
<script>const REFRESH_MS={int(refresh_ms)};{SCRIPT}</script></body></html>"""


def _t(token: str) -> str:
    return f"?token={quote(token)}" if token else ""


def part_page(part: Part, feedback: bool, token: str = "") -> str:
    r = part.record
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(json.dumps(v) if isinstance(v, dict) else str(v))}</td></tr>"
                   for k, v in r.to_dict().items())
    ext = {"overlay": "jpg", "image": "png", "mask": "png"}  # as storage keeps them
    pics = "".join(f'<figure><img alt="{k}" src="/part/{part.seq}/{k}.{ext[k]}{_t(token)}"><figcaption>{label}</figcaption>'
                   f"</figure>" for k, label, have in (("overlay", "heat map", r.overlay), ("image", "image", r.saved_image),
                                                     ("mask", "mask", r.mask)) if have)
    forms = ""
    if feedback:
        def form(action: str, label: str, cls: str) -> str:
            return (f'<form method="post" action="/part/{part.seq}/{action}{_t(token)}"><input type="hidden" '
                    f'name="from" value="form"><input name="operator" placeholder="operator"> <input name="note" '
                    f'placeholder="note"> <button class="{cls}">{label}</button></form>')
        forms = ((form("good", "This part is good", "") + '<p class="muted">Puts this image and its record into the '
                  'feedback folder. "Refit with feedback" on the station page then adds the marked parts to the '
                  "inspector; \"Undo refit\" goes back.</p>" if r.decision == "NG" else "")
                 + (form("missed", "Missed defect", "warn") + '<p class="muted">Files this image as a labelled defect '
                    "(feedback folder, test/missed) for <code>edge-inspect calibrate</code>.</p>"
                    if r.decision == "OK" else ""))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>part {part.seq}</title>
<style>{CSS} body{{padding:14px}} figure{{display:inline-block;margin:0 10px 10px 0}} figure img{{width:320px;max-height:420px;
object-fit:contain;image-rendering:pixelated;background:#000}} table{{border-collapse:collapse}} th,td{{text-align:left;padding:3px 10px;
border-bottom:1px solid #2d3136;font-size:13px}} form{{margin:10px 0}} a{{color:#8ab4f8}}</style></head><body>
<p><a href="/{_t(token)}">← station</a></p><h1><span class="badge {escape(r.decision)}">{escape(r.decision)}</span>
part {part.seq}: {escape(r.image)}</h1><div>{pics or '<p class="muted">storage kept no picture of this part</p>'}</div>
{forms}<table>{rows}</table></body></html>"""


def message_page(body: dict, token: str = "") -> str:
    ok = body.get("ok")
    text = body.get("error") if not ok else f"{body.get('action', '')} – saved {body.get('file', '')}"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>feedback</title><style>{CSS} '
            f'body{{padding:14px}} a{{color:#8ab4f8}}</style></head><body><h1>{"Done" if ok else "Not done"}</h1>'
            f'<p>{escape(str(text))}</p><p><a href="/{_t(token)}">← station</a></p></body></html>')
