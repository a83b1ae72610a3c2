"""Golden values for the Stats module's perturbation-DE numerics (pdex 0.1.28 standard path).

Every expected value is produced by the real scipy 1.17.1 / statsmodels 0.15.0 functions that
pdex calls; nothing here re-implements them. Sparse samples are stored as explicit values plus a
count of implicit zeros (`*_zeros`); the zeros are materialised only for the scipy call.

Usage: python make_goldens.py OUT.json   (see regenerate.sh)
"""

import json
import math
import sys
import warnings

import numpy as np
import scipy
import statsmodels
from scipy import special, stats
from statsmodels.stats.multitest import multipletests

warnings.simplefilter("ignore")  # anderson_ksamp warns on every call; mannwhitneyu on NaN input
rng = np.random.default_rng(20250607)


def enc(v):
    """A float for JSON; non-finite values as the strings the Swift decoder is told about."""
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def encs(values):
    return [enc(v) for v in values]


def dense(explicit, zeros):
    return np.concatenate([np.asarray(explicit, dtype=np.float64), np.zeros(zeros)])


# ------------------------------------------------------------------------------------------------
# Mann-Whitney U (scipy.stats.mannwhitneyu, two-sided, method "auto")

mwu = []


def add_mwu(name, x, y, x_zeros=0, y_zeros=0, continuity=(True, False)):
    xd, yd = dense(x, x_zeros), dense(y, y_zeros)
    pooled = np.concatenate([xd, yd])
    pooled = pooled[~np.isnan(pooled)]
    ties = len(np.unique(pooled)) < len(pooled)
    exact = (len(xd) <= 8 or len(yd) <= 8) and not ties and len(xd) > 0 and len(yd) > 0
    for c in continuity:
        r = stats.mannwhitneyu(xd, yd, use_continuity=c)
        mwu.append(dict(name=name, x=encs(x), x_zeros=x_zeros, y=encs(y), y_zeros=y_zeros,
                        continuity=c, exact=bool(exact),
                        statistic=enc(r.statistic), pvalue=enc(r.pvalue)))


def distinct_pair(n1, n2, shift):
    """Two tie-free samples: a random split of 0..n1+n2-1, the first moved by `shift` (+0.5 keeps
    every value distinct)."""
    perm = rng.permutation(n1 + n2).astype(float)
    return list(perm[:n1] + shift + 0.5 * (shift != 0)), list(perm[n1:])


# Exact path: every small shape, U from the centre to the extremes.
for n1 in range(1, 9):
    for n2 in (1, 2, 3, 5, 8, 9, 15, 40):
        for shift in (0, (n1 + n2) // 3, n1 + n2):
            x, y = distinct_pair(n1, n2, shift)
            add_mwu(f"exact n1={n1} n2={n2} shift={shift}", x, y, continuity=(shift % 2 == 0,))
# Exact path with the small sample second (target large, reference small).
for n1, n2 in ((9, 8), (30, 4), (200, 1)):
    x, y = distinct_pair(n1, n2, 3)
    add_mwu(f"exact large target n1={n1} n2={n2}", x, y)
# Exact path with a large other sample: scipy's recurrence leaves uint64 exactness.
for n1, n2, shifts in ((3, 300, (0, 40, 150)), (8, 200, (0, 15, 60)), (5, 1000, (0, 400)),
                       (8, 1000, (0, 300)), (7, 2500, (700, 0))):
    for shift in shifts:
        x, y = distinct_pair(n1, n2, shift)
        add_mwu(f"exact wide n1={n1} n2={n2} shift={shift}", x, y, continuity=(True,))
# U exactly at the centre: 2·P > 1 is clipped to 1.
add_mwu("exact centre", [1.0, 4.0], [2.0, 3.0])
add_mwu("single cells", [1.0], [2.0])
# Ties in a small sample switch to the normal approximation.
add_mwu("small with ties", [1.0, 2.0, 2.0, 3.0], [2.0, 4.0, 5.0])
add_mwu("small tie across samples", [1.0, 2.5, 3.0], [2.5, 4.0, 6.0, 7.0])
add_mwu("all tied", [1.0, 1.0, 1.0], [1.0, 1.0])
add_mwu("all zero sparse", [], [], x_zeros=4, y_zeros=30)
# Asymptotic, no ties.
x = list(np.round(rng.normal(0.3, 1, 50), 6))
y = list(np.round(rng.normal(0.0, 1, 80), 6) + 1e-7)
add_mwu("asymptotic normal 50 vs 80", x, y)
add_mwu("asymptotic separated 300 vs 300", list(np.arange(300) + 1000.0), list(np.arange(300.0)))
add_mwu("asymptotic identical halves", list(np.arange(0, 40, 2.0)), list(np.arange(1, 41, 2.0)))
# Sparse count data: one block of implicit zeros per sample (plus some explicit zeros).
for n_t, zt, n_r, zr in ((10, 50, 800, 4000), (3, 2, 40, 300), (60, 0, 500, 1500), (0, 25, 90, 30)):
    x = list(rng.poisson(1.5, n_t) + 1.0)
    y = list(rng.poisson(1.2, n_r) + 1.0)
    add_mwu(f"sparse counts {n_t}+{zt}z vs {n_r}+{zr}z", x, y, x_zeros=zt, y_zeros=zr)
x = [0.0, 0.0, 1.0, 2.0, 5.0]
y = [0.0, 3.0, 1.0, 1.0, 0.0, 2.0, 2.0]
add_mwu("explicit and implicit zeros", x, y, x_zeros=6, y_zeros=11)
add_mwu("negative values around zero block", [-2.0, -0.5, 1.5, 3.0], [-1.0, -0.5, 0.0, 0.7, 2.0],
        x_zeros=3, y_zeros=9)
add_mwu("log1p continuous sparse", list(np.round(np.log1p(rng.gamma(2, 3, 40)), 7)),
        list(np.round(np.log1p(rng.gamma(2, 2.5, 300)), 7)), x_zeros=35, y_zeros=420)
add_mwu("infinities", [-math.inf, 1.0, math.inf, 4.0], [2.0, math.inf, 3.0, 5.0, 6.0, -1.0])
add_mwu("nan in target", [1.0, math.nan, 3.0], [2.0, 4.0])
add_mwu("empty target", [], [1.0, 2.0])

# ------------------------------------------------------------------------------------------------
# Anderson-Darling k-sample, k = 2 (scipy.stats.anderson_ksamp([x_t, x_r]), midrank by default)

ad = []


def add_ad(name, x, y, x_zeros=0, y_zeros=0):
    case = dict(name=name, x=encs(x), x_zeros=x_zeros, y=encs(y), y_zeros=y_zeros)
    try:
        r = stats.anderson_ksamp([dense(x, x_zeros), dense(y, y_zeros)])
        case.update(statistic=enc(r.statistic), pvalue=enc(r.pvalue), error=None)
    except (ValueError, IndexError) as e:
        case.update(statistic=None, pvalue=None, error=type(e).__name__)
    ad.append(case)


for n1, n2 in ((2, 3), (5, 7), (20, 30), (100, 200), (8, 1500)):
    for shift in ((0.0, 0.9) if n2 > 1000 else (0.0, 0.4, 0.9, 2.5)):
        add_ad(f"normal n1={n1} n2={n2} shift={shift}", list(np.round(rng.normal(shift, 1, n1), 3)),
               list(np.round(rng.normal(0, 1, n2), 3)))
for n1, n2, lam in ((15, 40, 1.0), (200, 300, 3.0), (6, 9, 0.5)):
    add_ad(f"poisson ties n1={n1} n2={n2}", list(rng.poisson(lam * 1.3, n1) * 1.0),
           list(rng.poisson(lam, n2) * 1.0))
for n_t, zt, n_r, zr in ((12, 40, 600, 3000), (2, 5, 30, 100), (80, 10, 400, 900), (0, 20, 50, 60)):
    add_ad(f"sparse counts {n_t}+{zt}z vs {n_r}+{zr}z", list(rng.poisson(2.0, n_t) + 1.0),
           list(rng.poisson(1.5, n_r) + 1.0), x_zeros=zt, y_zeros=zr)
add_ad("explicit and implicit zeros", [0.0, 1.0, 2.0, 0.0, 5.0], [0.0, 3.0, 1.0, 1.0, 2.0],
       x_zeros=4, y_zeros=13)
add_ad("negative values around zero block", [-2.0, -0.5, 1.5, 3.0], [-1.0, -0.5, 0.0, 0.7, 2.0],
       x_zeros=3, y_zeros=9)
add_ad("separated (floor)", list(np.arange(40) + 100.0), list(np.arange(60.0)))
add_ad("interleaved (cap)", list(np.arange(0, 60, 2.0)), list(np.arange(1, 61, 2.0)))
add_ad("N=4", [1.0, 3.0], [2.0, 4.0])
add_ad("N=3 gives NaN", [1.0], [2.0, 3.0])
add_ad("N=2 raises IndexError", [1.0], [2.0])
add_ad("one distinct value raises ValueError", [1.0, 1.0], [1.0])
add_ad("all zero sparse raises ValueError", [], [], x_zeros=3, y_zeros=10)
add_ad("empty sample raises ValueError", [], [1.0, 2.0, 3.0])
# Sweep a shift so A2 crosses both edges of the interpolation range.
base_y = list(np.round(rng.normal(0, 1, 60), 5))
base_x = np.round(rng.normal(0, 1, 45), 5)
for shift in np.linspace(-0.2, 1.2, 15):
    add_ad(f"sweep shift={shift:.2f}", list(np.round(base_x + shift, 5)), base_y)

crit = [float(v) for v in (np.array([0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085])
                           + np.array([-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615]) / math.sqrt(1)
                           + np.array([-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154]) / 1)]
polyfit = [float(v) for v in np.polyfit(crit, np.log([0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001]), 2)]

# ------------------------------------------------------------------------------------------------
# Student t: scipy.stats.ttest_ind defaults (pooled), and special.stdtr itself

ttest = []


def add_t(name, x, y):
    r = stats.ttest_ind(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    ttest.append(dict(name=name, x=encs(x), y=encs(y), statistic=enc(r.statistic),
                      pvalue=enc(r.pvalue), df=enc(r.df)))


for n1, n2, shift in ((10, 12, 0.5), (3, 4, 1.0), (1, 5, 2.0), (5, 1, -1.0), (2, 2, 0.1),
                      (50, 70, 0.0), (600, 900, 0.05), (30, 40, 6.0), (400, 400, 4.0)):
    add_t(f"normal n1={n1} n2={n2} shift={shift}", list(np.round(rng.normal(shift, 1, n1), 4)),
          list(np.round(rng.normal(0, 1, n2), 4)))
add_t("log1p counts with offset", list(np.round(np.log1p(rng.poisson(3, 25)) + 1000, 6)),
      list(np.round(np.log1p(rng.poisson(2, 35)) + 1000, 6)))
add_t("one cell each (df 0)", [1.0], [2.0])
add_t("constant equal means", [1.0, 1.0], [1.0, 1.0, 1.0])
add_t("constant different means", [1.0, 1.0], [2.0, 2.0, 2.0])
add_t("constant, mean rounds off", [0.1, 0.1, 0.1], [0.2, 0.2])
add_t("nan", [1.0, 2.0], [math.nan, 3.0])
add_t("empty", [], [1.0, 2.0])

stdtr = []
for df in (0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 7.0, 10.0, 25.0, 50.0, 100.0, 333.3, 1000.0, 5000.0,
           1e4, 1e5, 1e6, 1e7):
    for t in (0.0, 1e-8, 0.01, 0.3, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 40.0, 100.0,
              1e3, 1e6):
        for s in ((1.0, -1.0) if t else (1.0,)):
            stdtr.append(dict(df=df, t=s * t, cdf=enc(special.stdtr(df, s * t))))

# ------------------------------------------------------------------------------------------------
# Benjamini-Hochberg: statsmodels multipletests(fdr_bh) and scipy false_discovery_control(bh)

bh = []


def add_bh(name, p):
    p = np.asarray(p, dtype=float)
    case = dict(name=name, p=encs(p))
    try:
        case["statsmodels"] = encs(multipletests(p, method="fdr_bh")[1])
    except Exception as e:  # noqa: BLE001 (the error type is the golden)
        case["statsmodels"] = type(e).__name__
    try:
        case["scipy"] = encs(np.atleast_1d(stats.false_discovery_control(p, method="bh")))
    except Exception as e:  # noqa: BLE001
        case["scipy"] = type(e).__name__
    bh.append(case)


add_bh("m=1", [0.3])
add_bh("m=1 zero", [0.0])
add_bh("m=2", [0.04, 0.01])
add_bh("m=2 tie", [0.5, 0.5])
add_bh("m=3 ties", [0.02, 0.02, 0.9])
add_bh("zeros and ones", [0.0, 1.0, 0.0, 0.5, 1.0, 0.25])
add_bh("rounded ties 200", np.round(rng.uniform(0, 1, 200), 2))
add_bh("small p 400", rng.uniform(0, 1, 400) ** 4)
for i in range(30):
    m = int(rng.integers(3, 120))
    add_bh(f"random ties #{i} m={m}", np.round(rng.uniform(0, 1, m) ** 2, int(rng.integers(1, 4))))
add_bh("nan", [0.1, math.nan, 0.3])
add_bh("above one", [0.1, 1.2, 0.3])
add_bh("negative", [0.1, -0.2, 0.3])

out = dict(
    meta=dict(scipy=scipy.__version__, numpy=np.__version__, statsmodels=statsmodels.__version__,
              anderson_critical=crit, anderson_polyfit=polyfit),
    mannwhitneyu=mwu, anderson_ksamp=ad, ttest_ind=ttest, stdtr=stdtr, bh=bh,
)
with open(sys.argv[1], "w") as f:
    json.dump(out, f, separators=(",", ":"), allow_nan=False)
print(f"wrote {sys.argv[1]}: {len(mwu)} mwu, {len(ad)} anderson, {len(ttest)} ttest, "
      f"{len(stdtr)} stdtr, {len(bh)} bh")
