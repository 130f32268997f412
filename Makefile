# A thin layer over meson and the scripts: the scripts are the source of truth.
.PHONY: all build check asan demo fuzz format clean

all: build

build:
	@scripts/install-deps.sh
	@[ -f build/dev/build.ninja ] || meson setup build/dev
	ninja -C build/dev

check:
	scripts/check.sh

asan:
	@[ -f build/asan/build.ninja ] || meson setup build/asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug -Dtests=enabled
	ninja -C build/asan && meson test -C build/asan --print-errorlogs

demo:
	scripts/demo.sh

fuzz:
	scripts/fuzz.sh

format:
	git ls-files -co --exclude-standard -- '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build
