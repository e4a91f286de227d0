#!/usr/bin/env bash
# test/gpu/check.sh: builds the cuda backend (quantumdb_cuda.so), the trainer
# library and the two checks, then runs the parity check (cuda against the
# cpu reference) and the timing table.  Run from the repository root; needs
# nvcc and gcc with libopenblas-dev, not Postgres.  Exits nonzero only when
# the build or the parity check fails; without a GPU both checks print
# "skip: ..." and it exits 0.
set -u
cd "$(dirname "$0")/../.." || exit 2

NVCC=${NVCC:-$(command -v nvcc || true)}
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ]; then
	echo "skip: nvcc not found"
	exit 0
fi
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}
JOBS=$(nproc 2>/dev/null || echo 2)
BUILD=$(mktemp -d "${TMPDIR:-/tmp}/qdb-gpu-check.XXXXXX") || exit 2
trap 'rm -rf "$BUILD"' EXIT

echo "# building trainer/libqdbtrainer.a"
make -C trainer -j"$JOBS" libqdbtrainer.a >"$BUILD/trainer.log" 2>&1 || {
	cat "$BUILD/trainer.log"
	echo "not ok - trainer library build failed"
	exit 1
}

# The top Makefile's rule, or the same nvcc command where make cannot run it.
echo "# building quantumdb_cuda.so with $NVCC"
if ! make -s quantumdb_cuda.so NVCC="$NVCC" CUDA_HOME="$CUDA_HOME" >"$BUILD/cuda.log" 2>&1; then
	cat "$BUILD/cuda.log"
	echo "# make failed; running nvcc directly"
	"$NVCC" -O3 -Xcompiler -fPIC,-fvisibility=hidden -shared -Itrainer \
		-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
		--cudart shared -o quantumdb_cuda.so cuda/*.cu \
		-L"$CUDA_HOME/lib64" -Xlinker -rpath,"$CUDA_HOME/lib64" -lcublas -lcudart || {
		echo "not ok - quantumdb_cuda.so build failed"
		exit 1
	}
fi

CFLAGS="-O2 -g -std=gnu11 -Wall -Itrainer"
LIBS="trainer/libqdbtrainer.a -lopenblas -lm -lpthread -ldl"
for t in parity timing; do
	# shellcheck disable=SC2086
	gcc $CFLAGS -o "$BUILD/$t" "test/gpu/$t.c" $LIBS || {
		echo "not ok - test/gpu/$t.c build failed"
		exit 1
	}
done

command -v nvidia-smi >/dev/null &&
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "# parity: cuda against the cpu reference"
"$BUILD/parity" "$PWD/quantumdb_cuda.so"
rc=$?

echo "# timing: step + adam, samples per second"
timeout 300 "$BUILD/timing" "$PWD/quantumdb_cuda.so" || echo "# timing exited with $?"

exit $rc
