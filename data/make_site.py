"""Generate data/site: a small fictional local-news site with realistic page furniture.

Every page has navigation, a cookie banner, a sidebar ("Most read"), related links, a newsletter box and
a footer around the article; one paragraph of each article is inserted by JavaScript after load (the
scraper must wait for it). All names, places and events are invented.

    python data/make_site.py      # rewrites data/site/*.html and data/site/urls.txt
"""

from __future__ import annotations

import html
import json
from pathlib import Path

SITE = Path(__file__).resolve().parent / "site"
SITE_NAME = "The Larkspur Ledger"

ARTICLES = [
    {
        "slug": "2026/11/tidal-plant-opens", "section": "Local",
        "title": "Larkspur Bay tidal power plant opens after six years of construction",
        "author": "Mara Ellison", "date": "2026-11-18",
        "paras": [
            "The Larkspur Bay tidal power plant began feeding electricity into the regional grid on Tuesday, six years after the first turbine foundations were poured into the estuary.",
            "The plant has a rated capacity of 42 megawatts, enough, according to the operator Estuary Energy Cooperative, to supply about 31,000 homes at average consumption. Its 24 turbines sit on the seabed beneath the old ferry channel and turn in both directions as the tide floods and ebbs.",
            "Construction cost 118 million euros, eleven million more than the budget approved by the county council in 2020. The overrun was blamed on storm damage to a cofferdam in the winter of 2023, which delayed work by nine months.",
            "Fishermen's groups had opposed the project at the planning stage, arguing that the turbines would disturb sea bass feeding grounds. The cooperative agreed to a monitoring programme run by the Coastal Ecology Institute, which will publish its first report in the spring.",
            "At the opening ceremony, the cooperative's chair, Idris Vantongeren, said the plant would be \"as predictable as the moon\", because tides, unlike wind, can be forecast decades ahead.",
        ],
        "js_para": "The first full day of operation produced 612 megawatt-hours, the cooperative said on Wednesday evening.",
        "related": ["2026/11/ferry-timetable-winter", "2026/11/council-budget-vote"],
    },
    {
        "slug": "2026/11/council-budget-vote", "section": "Politics",
        "title": "Council approves 2027 budget with new library funding and a parking levy",
        "author": "Tomas Reyes", "date": "2026-11-20",
        "paras": [
            "Larkspur county council approved its 2027 budget late on Thursday by 23 votes to 14, after a debate that ran for more than five hours.",
            "The budget totals 412 million euros. Its most contested item is a levy of two euros a day on workplace parking spaces in the town centre, which the finance committee expects to raise 3.8 million euros a year for bus services.",
            "Business groups said the levy would push offices out to the ring road. Councillor Hanna Oduya, who proposed it, replied that half of all car trips into the centre are shorter than three kilometres.",
            "The budget also restores Sunday opening at the central library and funds a new branch library in the Eastmoor district, due to open in September 2027.",
            "Property tax rises by 2.9 percent, below the rate of inflation for the second year running.",
        ],
        "js_para": "A motion to delay the parking levy until 2028 was defeated by a single vote.",
        "related": ["2026/11/library-eastmoor", "2026/11/tidal-plant-opens"],
    },
    {
        "slug": "2026/11/ferry-timetable-winter", "section": "Transport",
        "title": "Winter ferry timetable cuts evening crossings to Gullholm Island",
        "author": "Mara Ellison", "date": "2026-11-12",
        "paras": [
            "The ferry company Bayline will run its last evening crossing from Larkspur harbour to Gullholm Island at 19:40 from 1 December, almost two hours earlier than in summer.",
            "Bayline said that passenger numbers on the two late sailings fell below 30 people a night last winter, and that the crew shortage meant it could not staff them safely.",
            "Islanders have collected 1,150 signatures on a petition asking for at least one crossing after 21:00 on Fridays and Saturdays. The island has about 900 permanent residents.",
            "The winter timetable runs until 15 March. Bayline's new vessel, the MV Corrin Dale, which carries 40 cars, is due to enter service on the route in April.",
        ],
        "js_para": "Bayline's operations manager, Petra Lindqvist, said the company would review the timetable in January.",
        "related": ["2026/11/tidal-plant-opens", "2026/11/storm-warning"],
    },
    {
        "slug": "2026/11/library-eastmoor", "section": "Culture",
        "title": "Eastmoor branch library will be built in the old tram depot",
        "author": "Ines Calloway", "date": "2026-11-21",
        "paras": [
            "The new Eastmoor branch library will occupy the listed tram depot on Quarry Lane, the council's culture department announced on Friday, a day after the budget that funds it was approved.",
            "The architects, Halden and Okafor, plan to keep the depot's iron roof trusses and its original tram rails, which will run through the children's reading room under glass panels.",
            "The building will hold about 28,000 books and a maker space with two 3D printers. The conversion is budgeted at 6.4 million euros.",
            "The depot housed the town's trams until the network closed in 1961 and has since served as a bus garage and, most recently, a storage yard for the parks department.",
        ],
        "js_para": "The library's name will be chosen by a public vote that opens on 1 December.",
        "related": ["2026/11/council-budget-vote"],
    },
    {
        "slug": "2026/11/storm-warning", "section": "Weather",
        "title": "Storm Orla expected to bring gusts of 110 km/h to the coast on Sunday",
        "author": "Ravi Pemberton", "date": "2026-11-22",
        "paras": [
            "The national weather service has issued an amber warning for the Larkspur coast from 06:00 on Sunday, with gusts of up to 110 kilometres per hour expected as Storm Orla passes to the north.",
            "Rainfall of 40 to 60 millimetres is forecast in the hills above the town, and the river authority warned of possible flooding along the Tarrow between Millbridge and the harbour.",
            "Bayline has cancelled all Sunday ferry crossings to Gullholm Island. The coastal road between Larkspur and Saltcombe will close at the sea wall if waves overtop it, as they did twice last winter.",
            "Residents of low-lying streets in the harbour quarter can collect sandbags from the fire station on Dock Street on Saturday between 10:00 and 16:00.",
        ],
        "js_para": "Storm Orla is the fifteenth named storm of the season.",
        "related": ["2026/11/ferry-timetable-winter", "2026/11/tidal-plant-opens"],
    },
    {
        "slug": "2026/11/hospital-wing", "section": "Health",
        "title": "St Brennan's hospital opens a children's wing with 36 beds",
        "author": "Ines Calloway", "date": "2026-11-09",
        "paras": [
            "St Brennan's hospital opened its new children's wing on Monday, adding 36 beds and two operating theatres reserved for paediatric surgery.",
            "Until now, children from Larkspur needing planned surgery were usually sent to the university hospital in Corrington, a drive of about two hours.",
            "The wing was paid for by the regional health board and by a fundraising appeal that raised 2.3 million euros from local donors, including a single gift of 400,000 euros from the family of the late shipbuilder Aurelio Marsh.",
            "The hospital has recruited 54 nurses for the wing, many of them from a training scheme it runs with Larkspur College.",
        ],
        "js_para": "The first patient, an eight-year-old with a broken wrist, was treated there on Monday afternoon.",
        "related": ["2026/11/college-enrolment"],
    },
    {
        "slug": "2026/11/college-enrolment", "section": "Education",
        "title": "Larkspur College enrolment reaches a record 7,400 students",
        "author": "Tomas Reyes", "date": "2026-11-05",
        "paras": [
            "Larkspur College enrolled 7,400 students this autumn, the most in its 58-year history, driven by new courses in marine engineering and nursing.",
            "The marine engineering course, launched with support from the tidal plant's operator, took 120 students in its first year, twice the number planned.",
            "The college's principal, Dr. Yusuf Abernathy, said the growth had left classrooms overcrowded and that a temporary teaching building would be installed on the sports field in January.",
            "Student housing remains the main problem: the college has 900 rooms of its own, and rents for shared flats in the town rose by 11 percent this year.",
        ],
        "js_para": "Applications for next year open on 15 January.",
        "related": ["2026/11/hospital-wing", "2026/11/tidal-plant-opens"],
    },
    {
        "slug": "2026/11/harbour-festival-record", "section": "Culture",
        "title": "Harbour lantern festival drew 58,000 visitors, organisers say",
        "author": "Ravi Pemberton", "date": "2026-11-03",
        "paras": [
            "The Larkspur harbour lantern festival attracted about 58,000 visitors over its three nights last weekend, the organisers said on Monday, up from 41,000 last year.",
            "More than 1,600 paper lanterns were floated on the inner harbour on Saturday night. The most photographed was a four-metre lantern shaped like a humpback whale, made by pupils of Northgate primary school.",
            "Traders on Dock Street reported their busiest weekend of the year. The festival committee estimates that visitors spent 2.1 million euros in the town.",
            "Next year's festival will move to a later weekend to avoid a clash with the regional rowing championships.",
        ],
        "js_para": "The festival was founded in 1994 by the harbour's fishing families.",
        "related": ["2026/11/tidal-plant-opens", "2026/11/storm-warning"],
    },
    {
        "slug": "2026/10/bridge-repairs", "section": "Transport",
        "title": "Millbridge road bridge to close for four months of repairs",
        "author": "Mara Ellison", "date": "2026-10-28",
        "paras": [
            "The road bridge over the Tarrow at Millbridge will close to all traffic from 12 January for four months while engineers replace its bearings and expansion joints.",
            "An inspection in the summer found corrosion in the steel bearings, which date from the bridge's construction in 1972. About 14,000 vehicles cross the bridge on an average weekday.",
            "Traffic will be diverted over the Saltcombe road, adding about 9 kilometres to journeys between Millbridge and the town centre. A footbridge for pedestrians and cyclists will stay open.",
            "The works will cost 5.2 million euros and are being carried out by the contractor Norwell Civil.",
        ],
        "js_para": "Bus route 7 will run every 12 minutes instead of every 20 during the closure.",
        "related": ["2026/11/storm-warning", "2026/11/council-budget-vote"],
    },
    {
        "slug": "2026/10/football-cup-run", "section": "Sport",
        "title": "Larkspur Athletic reach the national cup's fourth round for the first time",
        "author": "Jonah Whitlock", "date": "2026-10-31",
        "paras": [
            "Larkspur Athletic beat second-division Corrington Rovers 2-1 on Saturday to reach the fourth round of the national cup for the first time in the club's 103-year history.",
            "Striker Elif Demirci scored both goals, the winner coming in the 88th minute from a free kick that deflected off the wall.",
            "A crowd of 4,850, a record for the club's Quayside ground, watched the match. The club said it would add temporary seating if it is drawn at home in the next round.",
            "The fourth-round draw takes place on Monday evening. Athletic's manager, Colm Brannigan, said he hoped for \"a big club, at home, on a cold night\".",
        ],
        "js_para": "Tickets for a home tie would go on sale to season-ticket holders first.",
        "related": ["2026/11/harbour-festival-record"],
    },
]

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} | {site}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="author" content="{author}">
<meta name="description" content="{description}">
<meta property="og:site_name" content="{site}">
<meta property="og:title" content="{title}">
<meta property="og:type" content="article">
<meta property="article:published_time" content="{date}T08:00:00+00:00">
<link rel="canonical" href="/{slug}.html">
<link rel="stylesheet" href="/static/site.css">
<script type="application/ld+json">{ldjson}</script>
</head>
<body>
<div id="cookie-banner" class="cookie-banner" role="dialog">
  <p>We use cookies to personalise content and ads, to provide social media features and to analyse our
  traffic. We also share information about your use of our site with our advertising partners.</p>
  <button>Accept all cookies</button> <button>Manage preferences</button>
</div>
<header class="masthead">
  <a class="logo" href="/">{site}</a>
  <nav class="main-nav"><ul>
    <li><a href="/">Home</a></li><li><a href="/local/">Local</a></li><li><a href="/politics/">Politics</a></li>
    <li><a href="/transport/">Transport</a></li><li><a href="/culture/">Culture</a></li>
    <li><a href="/sport/">Sport</a></li><li><a href="/weather/">Weather</a></li>
    <li><a href="/subscribe/">Subscribe</a></li><li><a href="/login/">Sign in</a></li>
  </ul></nav>
  <div class="breaking">Breaking: Subscribe today and get your first three months for just 1 euro</div>
</header>
<div class="layout">
<main>
  <article class="story">
    <p class="section"><a href="/{section_slug}/">{section}</a></p>
    <h1>{title}</h1>
    <p class="byline">By <span class="author">{author}</span> &middot; <time datetime="{date}">{date_long}</time></p>
    <div class="share">Share on <a href="#">Facebook</a> <a href="#">X</a> <a href="#">Email</a></div>
    <div class="story-body" id="story-body">
{body}
    </div>
    <aside class="related"><h2>Related stories</h2><ul>
{related}
    </ul></aside>
  </article>
  <section class="newsletter"><h2>Get the Ledger in your inbox</h2>
    <p>Sign up for our morning briefing: the day's top stories from Larkspur and the bay, every weekday at 7am.</p>
    <form><input type="email" placeholder="Your email address"><button>Sign up</button></form></section>
  <section class="comments"><h2>Comments (0)</h2><p>Comments are closed for this article.</p></section>
</main>
<aside class="sidebar">
  <h2>Most read</h2><ol>
{most_read}
  </ol>
  <div class="ad">Advertisement: Bayview Motors winter tyre offer, four tyres fitted from 299 euros</div>
</aside>
</div>
<footer class="site-footer">
  <p>&copy; 2026 {site}. All rights reserved. Registered office: 4 Harbour Row, Larkspur.</p>
  <p><a href="/about/">About us</a> | <a href="/contact/">Contact</a> | <a href="/privacy/">Privacy policy</a> |
  <a href="/terms/">Terms of use</a> | <a href="/advertise/">Advertise with us</a></p>
</footer>
<script>
  // late content: the last paragraph arrives after load, like many CMS widgets
  window.addEventListener("load", function () {{
    setTimeout(function () {{
      var p = document.createElement("p");
      p.className = "late";
      p.textContent = {js_para};
      document.getElementById("story-body").appendChild(p);
    }}, 150);
  }});
</script>
</body>
</html>
"""


def _long_date(d: str) -> str:
    import datetime as dt

    return dt.date.fromisoformat(d).strftime("%d %B %Y").lstrip("0")


def main() -> None:
    SITE.mkdir(parents=True, exist_ok=True)
    by_slug = {a["slug"]: a for a in ARTICLES}
    most_read = "\n".join(f'    <li><a href="/{a["slug"]}.html">{html.escape(a["title"])}</a></li>'
                          for a in ARTICLES[:5])
    urls = []
    for a in ARTICLES:
        body = "\n".join(f"      <p>{html.escape(p)}</p>" for p in a["paras"])
        related = "\n".join(f'      <li><a href="/{s}.html">{html.escape(by_slug[s]["title"])}</a></li>'
                            for s in a["related"])
        ld = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": a["title"],
              "datePublished": a["date"], "author": {"@type": "Person", "name": a["author"]},
              "publisher": {"@type": "Organization", "name": SITE_NAME}}
        page = TEMPLATE.format(
            title=html.escape(a["title"]), site=SITE_NAME, author=html.escape(a["author"]),
            description=html.escape(a["paras"][0][:150]), date=a["date"], date_long=_long_date(a["date"]),
            slug=a["slug"], section=a["section"], section_slug=a["section"].lower(), body=body,
            related=related, most_read=most_read, ldjson=json.dumps(ld), js_para=json.dumps(a["js_para"]),
        )
        out = SITE / f"{a['slug']}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
        urls.append(f"/{a['slug']}.html")
    index = "\n".join(f'<li><a href="{u}">{html.escape(a["title"])}</a></li>' for u, a in zip(urls, ARTICLES))
    (SITE / "index.html").write_text(
        f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{SITE_NAME}</title></head>"
        f"<body><h1>{SITE_NAME}</h1><ul>\n{index}\n</ul></body></html>\n", encoding="utf-8")
    (SITE / "static").mkdir(exist_ok=True)
    (SITE / "static" / "site.css").write_text(
        "body{font-family:Georgia,serif;margin:0}.layout{display:flex;gap:2rem;padding:1rem}"
        "main{flex:3}.sidebar{flex:1}.cookie-banner{position:fixed;bottom:0;background:#eee;padding:1rem}\n",
        encoding="utf-8")
    (SITE / "urls.txt").write_text(
        "# Article paths of the sample site; join them to the served base URL\n"
        "# (python -m rag_news.index --urls data/site/urls.txt --base-url http://127.0.0.1:PORT/)\n"
        + "\n".join(urls) + "\n", encoding="utf-8")
    print(f"wrote {len(ARTICLES)} articles to {SITE}")


if __name__ == "__main__":
    main()
