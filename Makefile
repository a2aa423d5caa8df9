# covermill: `make demo` and `make test` do all the set-up on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
MUSIC := /usr/share/planetblupi/music
DEMO_SONG := .cache/demo/planetblupi-music004-60s.ogg
BENCH_SONG := .cache/bench/planetblupi-music004-240s.ogg

# ffmpeg: decoding and the video; libfluidsynth3 + fluid-soundfont-gm: rendering (FluidR3_GM, the
# AMT-APC evaluation's soundfont); libmagickwand-dev: Wand cannot import without MagickWand;
# fonts: Latin and CJK titles on thumbnails; planetblupi-music-*: real recordings (with their MIDI)
# for the demo, the tests and the bench, installable offline; chromium: the tests' real browser;
# lilypond: engraves the score's PDF (with Ghostscript, 143 MB installed).
APT_PACKAGES := ffmpeg libfluidsynth3 fluid-soundfont-gm libmagickwand-dev fonts-dejavu-core \
	fonts-noto-cjk planetblupi-music-ogg planetblupi-music-midi chromium lilypond

QUALITY_CLIPS := .cache/quality/clips-60s
QUALITY_SONGS := .cache/quality/songs-210s
# The quality bench's corpus (bench/corpus.py): real recordings of other genres, split into songs the
# defaults may be tuned on and held-out songs only reported on. Installed by `make bench-corpus` only.
CORPUS_PACKAGES := fb-music-high drascula-music nexuiz-music ufoai-music wesnoth-1.16-music
HELDOUT_CLIPS := .cache/quality/heldout-60s
HELDOUT_SONGS := .cache/quality/heldout-210s
TUNE_CLIPS := .cache/quality/tune-60s
TUNE_SONGS := .cache/quality/tune-210s

.PHONY: help system install demo lint check test bench bench-generate bench-gpu bench-gpu-wheels bench-arrange bench-video bench-score bench-rank bench-cli-start bench-thumbnail bench-upload bench-prefect bench-chaos \
	bench-quality bench-quality-full bench-corpus bench-quality-heldout bench-quality-heldout-full bench-quality-tune \
	bench-quality-tune-full clean

help:
	@echo "make demo   set up everything, then make a cover of a real 1-minute recording (dry run)"
	@echo "make check  the quick loop (under 2 minutes): ruff, then the tests marked neither server, browser nor slow"
	@echo "make lint   ruff: lint and import order (ruff check --fix fixes most of what it finds)"
	@echo "make test   set up everything, then ruff and the whole test suite (Prefect servers, browser, slow ones)"
	@echo "make bench  time every stage on a 4-minute song (bench/e2e.py)"
	@echo "make bench-generate      Pop2Piano seconds per candidate on a 1-minute clip (random weights, real size)"
	@echo "make bench-gpu           on a GPU machine with only Python and torch: the Pop2Piano and Stable Diffusion benches, one JSON (bench/gpu.sh)"
	@echo "make bench-gpu-wheels    on a CPU machine with network: the cp312 wheels (.whl/) and the song that bench-gpu needs carried beside the repo"
	@echo "make bench-arrange       what arranging adds to the generate stage, s per song-minute (4-minute song)"
	@echo "make bench-video         video render speed (x realtime) and peak memory, still and falling notes, on a 4-minute cover"
	@echo "make bench-score         sheet music: MusicXML and PDF seconds per minute of music on a 4-minute cover, notes matched"
	@echo "make bench-thumbnail     Stable Diffusion seconds per 512x512 image at 25 steps (random weights, SD 1.5 size)"
	@echo "make bench-upload        upload throughput to a loopback fake YouTube vs a file copy, requests per upload"
	@echo "make bench-prefect       Prefect overhead per song: a 10-song dry-run nightly of 10 s clips"
	@echo "make bench-chaos         the nightly with publishing on, SIGKILLed 50+ times: published once, nothing half-written or left running"
	@echo "make bench-quality       cover quality, paper style, on one-minute cuts of 10 real songs (bench/quality.py)"
	@echo "make bench-quality-full  the same on 3.5-minute cuts (a song's usual length)"
	@echo "make bench-corpus        install the corpus's recordings (5 Debian music packages, bench/corpus.py)"
	@echo "make bench-quality-heldout  cover quality on one-minute cuts of the 33 held-out songs, and per genre"
	@echo "make bench-quality-tune     the same on the 24 songs the defaults may be tuned on (planetblupi included)"
	@echo "make bench-quality-heldout-full, bench-quality-tune-full  the same on 3.5-minute cuts (--identify summary)"

system:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:" $$missing; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml constraints.txt | system
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU build on this machine's disk; an unpinned torch
	# (asked for by any dependency) would pull a multi-GB CUDA build.
	$(PIP) install -q -c constraints.txt torch==2.13.0
	# covermill and its dependencies, held to the versions that worked together (constraints.txt).
	$(PIP) install -q -c constraints.txt -e ".[test]"
	# The two embedded generators without their declared dependencies: basic-pitch declares
	# tensorflow, which its ONNX path does not use; transkun declares torchaudio, whose wheel cannot
	# load beside torch 2.13 and whose mere presence breaks transformers. What they really need is
	# in pyproject.toml (onnxruntime, librosa, resampy<0.4.3, moduleconf, ...).
	$(PIP) install -q -c constraints.txt --no-deps basic-pitch==0.4.0 transkun==2.0.1
	touch $@

install: $(VENV)/.installed

$(DEMO_SONG): | system
	mkdir -p $(dir $@)
	ffmpeg -nostdin -v error -y -ss 30 -t 60 -i $(MUSIC)/music004.ogg -c:a libvorbis -q:a 5 \
	  -metadata title="Planet Blupi theme 4" -metadata artist="Planet Blupi" $@

$(BENCH_SONG): | system
	mkdir -p $(dir $@)
	ffmpeg -nostdin -v error -y -t 240 -i $(MUSIC)/music004.ogg -c:a libvorbis -q:a 5 \
	  -metadata title="Planet Blupi theme 4" -metadata artist="Planet Blupi" $@

demo: install $(DEMO_SONG)
	$(VENV)/bin/covermill run $(DEMO_SONG) --out out/demo --dry-run

lint: install
	$(VENV)/bin/ruff check .

# The quick loop: no Prefect server, no browser, nothing slow (markers in pyproject.toml). With
# ephemeral servers off and the browser refused, a test that would start either fails ("No Prefect
# API URL provided", "mark it @pytest.mark.browser") instead of slowing the loop down: mark it.
check: lint
	PREFECT_SERVER_EPHEMERAL_ENABLED=false COVERMILL_TEST_NO_BROWSER=1 $(VENV)/bin/python -m pytest -q -m "not server and not browser and not slow" --durations=5

# Two workers, each a whole test file (module fixtures are shared within a file): 9.5 minutes on 2
# cores where one process takes 13.5, as much of the suite waits on servers, leases and processes.
TEST_WORKERS ?= 2
test: lint
	$(VENV)/bin/python -m pytest -ra --durations=15 -n $(TEST_WORKERS) --dist loadfile

bench: install $(BENCH_SONG)
	$(VENV)/bin/python bench/e2e.py $(BENCH_SONG)

bench-generate: install
	$(VENV)/bin/python bench/generate.py $(MUSIC)/music004.ogg --seconds 60 --json out/bench/generate.json

# A GPU machine here has Python 3.12 and torch but no network and no covermill
# (../shared/gpu-notes.md): bench/gpu.sh installs these wheels there, carried in .whl/ (40 MB),
# and benches the 4-minute song carried in .cache/bench/.
GPU_WHEELS := essentia==2.1b6.dev1389 soxr==1.1.0 soundfile==0.14.0 cffi==2.1.1 pycparser \
	librosa==0.11.0 audioread pooch decorator standard-aifc standard-sunau \
	pretty_midi==0.2.11.post0 mido importlib_resources importlib_metadata click==8.5.1 \
	transformers==5.23.0 diffusers==0.42.1

# figures in out/bench/gpu.json (or GPU_BENCH_OUT); `bench/gpu.sh --help` for a song and options
bench-gpu:
	bench/gpu.sh

bench-gpu-wheels: $(BENCH_SONG)
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)
	@du -sh .whl $(BENCH_SONG)

bench-arrange: install
	$(VENV)/bin/python bench/arrange.py $(MUSIC)/music004.ogg --seconds 240

bench-video: install
	$(VENV)/bin/python bench/video.py $(MUSIC)/music004.ogg --seconds 240 --json out/bench/video.json

bench-score: install
	$(VENV)/bin/python bench/score.py $(MUSIC)/music004.ogg --seconds 240 --json out/bench/score.json

bench-cli-start: install
	$(VENV)/bin/python bench/cli_start.py --json out/bench/cli_start.json

bench-rank: install
	$(VENV)/bin/python bench/rank.py $(MUSIC)/music004.ogg --seconds 240 --json out/bench/rank.json

bench-thumbnail: install
	$(VENV)/bin/python bench/thumbnail.py --json out/bench/thumbnail.json

bench-upload: install
	$(VENV)/bin/python bench/upload.py --mb 200 --json out/bench/upload.json

bench-prefect: install
	$(VENV)/bin/python bench/prefect_overhead.py --songs 10 --seconds 10 --json out/bench/prefect.json

bench-chaos: install
	$(VENV)/bin/python bench/chaos.py --kills 50 --songs 3 --json out/bench/chaos.json

# The planetblupi recordings come with their MIDI scores: the bench cuts both at the same place.
$(QUALITY_CLIPS)/.cut: | install
	$(VENV)/bin/python bench/cut_dataset.py $(MUSIC) $(QUALITY_CLIPS) --start 30 --seconds 60

$(QUALITY_SONGS)/.cut: | install
	$(VENV)/bin/python bench/cut_dataset.py $(MUSIC) $(QUALITY_SONGS) --start 30 --seconds 210

bench-quality: install $(QUALITY_CLIPS)/.cut
	$(VENV)/bin/python bench/quality.py $(QUALITY_CLIPS) --out out/quality/clips-60s

bench-quality-full: install $(QUALITY_SONGS)/.cut
	$(VENV)/bin/python bench/quality.py $(QUALITY_SONGS) --out out/quality/songs-210s --identify summary

# The corpus's packages, through `system`'s own apt logic, only when a corpus target runs.
bench-corpus: | system
	@$(MAKE) --no-print-directory system APT_PACKAGES="$(CORPUS_PACKAGES)"

$(HELDOUT_CLIPS)/.cut: | install bench-corpus
	$(VENV)/bin/python bench/cut_corpus.py --split heldout --seconds 60 $(HELDOUT_CLIPS)

$(HELDOUT_SONGS)/.cut: | install bench-corpus
	$(VENV)/bin/python bench/cut_corpus.py --split heldout --seconds 210 $(HELDOUT_SONGS)

$(TUNE_CLIPS)/.cut: | install bench-corpus
	$(VENV)/bin/python bench/cut_corpus.py --split tune --seconds 60 $(TUNE_CLIPS)

$(TUNE_SONGS)/.cut: | install bench-corpus
	$(VENV)/bin/python bench/cut_corpus.py --split tune --seconds 210 $(TUNE_SONGS)

bench-quality-heldout: install $(HELDOUT_CLIPS)/.cut
	$(VENV)/bin/python bench/quality.py $(HELDOUT_CLIPS) --out out/quality/heldout-60s --identify all
	$(VENV)/bin/python bench/corpus.py --by-genre out/quality/heldout-60s

bench-quality-heldout-full: install $(HELDOUT_SONGS)/.cut
	$(VENV)/bin/python bench/quality.py $(HELDOUT_SONGS) --out out/quality/heldout-210s --identify summary
	$(VENV)/bin/python bench/corpus.py --by-genre out/quality/heldout-210s

bench-quality-tune: install $(TUNE_CLIPS)/.cut
	$(VENV)/bin/python bench/quality.py $(TUNE_CLIPS) --out out/quality/tune-60s --identify all
	$(VENV)/bin/python bench/corpus.py --by-genre out/quality/tune-60s

bench-quality-tune-full: install $(TUNE_SONGS)/.cut
	$(VENV)/bin/python bench/quality.py $(TUNE_SONGS) --out out/quality/tune-210s --identify summary
	$(VENV)/bin/python bench/corpus.py --by-genre out/quality/tune-210s

clean:
	rm -rf $(VENV) .cache out
