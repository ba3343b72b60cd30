#!/usr/bin/env bash
# Plots rows written by `scripts/bench.sh --out FILE.tsv` as a PNG: per
# configuration (node, read mode, test, pipeline depth), throughput and p99
# latency of elastickv next to redis-server (appendfsync always).
#
# Usage: scripts/plot-bench.sh FILE.tsv OUT.png
# Needs: gnuplot (Debian: apt-get install gnuplot-nox).
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,7p' "$0"; exit 2; }
command -v gnuplot >/dev/null || { echo "plot-bench.sh: gnuplot not found" >&2; exit 2; }
in=$1 png=$2
data=$(mktemp)
trap 'rm -f "$data"' EXIT
# One row per configuration: label, elastickv ops, redis ops, elastickv p99, redis p99, ratio.
awk -F'\t' 'NR > 1 { printf "\"%s P%s\\n%s\\n%s\"\t%s\t%s\t%s\t%s\t%s\n", $3, $4, $1, $2, $5, $8, $7, $10, $11 }' "$in" >"$data"
gnuplot <<GP
set terminal pngcairo size 1600,950 font "Sans,10"
set output "$png"
set multiplot layout 2,1 title "elastickv (3 nodes) vs redis-server appendfsync always — redis-benchmark -c 50, 2 vCPUs"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xtics font ",9"
set bmargin 5
set ylabel "ops/s (log scale)"
set logscale y
set yrange [1000:*]
set title "Throughput (label: elastickv/redis ratio)"
plot "$data" using 2:xtic(1) title "elastickv" lc rgb "#1f77b4", \
     "" using 3 title "redis" lc rgb "#d62728", \
     "" using (\$0-0.2):2:(sprintf("%.2f", \$6)) with labels offset 0,0.8 font ",9" notitle
set ylabel "p99 ms"
unset logscale y
set yrange [0:*]
set title "p99 latency"
plot "$data" using 4:xtic(1) title "elastickv" lc rgb "#1f77b4", \
     "" using 5 title "redis" lc rgb "#d62728"
unset multiplot
GP
echo "wrote $png"
