// threads_streams.cu - 8 host threads, each with a high-priority stream and
// a non-blocking stream, launching kernels and async copies, ordering work
// across streams with events, timing a sleeping kernel with events, and
// using the default stream; meanwhile one more thread sits in a long
// cudaStreamSynchronize on a slow kernel, and every worker must finish
// before it returns (one blocked thread must not block the others).
//
// Built a second time with --default-stream per-thread (the _ptds variant),
// where stream 0 is each thread's own stream.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "test_common.h"

// Host backend: ts_sleep keeps its stream busy 50 ms and ts_slow 1.5 s
// (busy_us in tests/host_kernels/threads_streams_kernels.c); on a GPU they
// spin on the global timer for @ns.
static const unsigned long long SLEEP_NS = 50ull * 1000 * 1000;
static const unsigned long long SLOW_NS = 1500ull * 1000 * 1000;
static const int NTHREADS = 8, ITERS = 40;

__device__ static unsigned long long global_ns()
{
	unsigned long long t;
	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	return t;
}

extern "C" __global__ void ts_sleep(unsigned long long ns)
{
	unsigned long long t0 = global_ns();
	while (global_ns() - t0 < ns)
		;
}

extern "C" __global__ void ts_slow(unsigned long long ns, int *done)
{
	unsigned long long t0 = global_ns();
	while (global_ns() - t0 < ns)
		;
	*done = 1;
}

extern "C" __global__ void ts_scale(float *out, const float *in, float a, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = in[i] * a;
}

extern "C" __global__ void ts_add(float *out, const float *x, const float *y,
				  int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		out[i] = x[i] + y[i];
}

typedef std::chrono::steady_clock Clock;

static double since(Clock::time_point t0)
{
	return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Worker {
	int id;
	int n;
	cudaStream_t a, b;
	float *h_in, *h_out, *d_in, *d_mid, *d_out;
	cudaEvent_t dep, t_start, t_stop;
	double done_at; // seconds since the start
	float elapsed_ms;
	bool saw_not_ready;
};

static std::atomic<int> go(0);
static Clock::time_point t_begin;
static int prio_least, prio_greatest;

static void setup(Worker &w)
{
	CHECK(cudaSetDevice(0));
	w.n = 4096 + w.id * 100;
	CHECK(cudaStreamCreateWithPriority(&w.a, cudaStreamDefault, prio_greatest));
	CHECK(cudaStreamCreateWithFlags(&w.b, cudaStreamNonBlocking));
	int prio = 1;
	unsigned int flags = 99;
	CHECK(cudaStreamGetPriority(w.a, &prio));
	REQUIRE(prio == prio_greatest, "priority %d, want %d", prio, prio_greatest);
	CHECK(cudaStreamGetFlags(w.b, &flags));
	REQUIRE(flags == cudaStreamNonBlocking, "flags %#x", flags);
	size_t bytes = w.n * sizeof(float);
	CHECK(cudaMallocHost(&w.h_in, bytes));
	CHECK(cudaMallocHost(&w.h_out, bytes));
	CHECK(cudaMalloc(&w.d_in, bytes));
	CHECK(cudaMalloc(&w.d_mid, bytes));
	CHECK(cudaMalloc(&w.d_out, bytes));
	CHECK(cudaEventCreateWithFlags(&w.dep, cudaEventDisableTiming));
	CHECK(cudaEventCreate(&w.t_start));
	CHECK(cudaEventCreate(&w.t_stop));
	// Load every kernel now: with lazy loading (the default) the first
	// launch of a kernel waits for the whole context to be idle, which
	// would hold the workers up behind the slow kernel.
	ts_sleep<<<1, 1, 0, w.a>>>(0);
	ts_scale<<<1, 32, 0, w.a>>>(w.d_mid, w.d_in, 1.0f, 0);
	ts_add<<<1, 32, 0, w.b>>>(w.d_out, w.d_mid, w.d_in, 0);
	CHECK(cudaGetLastError());
	CHECK(cudaStreamSynchronize(w.a));
	CHECK(cudaStreamSynchronize(w.b));
}

// Everything here avoids calls that synchronize the whole device
// (cudaFree, cudaFreeHost, cudaDeviceSynchronize): those would rightly
// wait for the slow kernel.
static void work(Worker &w)
{
	while (!go.load())
		std::this_thread::yield();
	Rng r(w.id + 1);
	size_t bytes = w.n * sizeof(float);
	int blocks = (w.n + 255) / 256;

	// Timing: a sleeping kernel between two events.
	CHECK(cudaEventRecord(w.t_start, w.a));
	ts_sleep<<<1, 1, 0, w.a>>>(SLEEP_NS);
	CHECK(cudaGetLastError());
	CHECK(cudaEventRecord(w.t_stop, w.a));
	cudaError_t q = cudaStreamQuery(w.a);
	REQUIRE(q == cudaSuccess || q == cudaErrorNotReady, "query %s",
		cudaGetErrorName(q));
	w.saw_not_ready = q == cudaErrorNotReady;
	q = cudaEventQuery(w.t_stop);
	REQUIRE(q == cudaSuccess || q == cudaErrorNotReady, "event query %s",
		cudaGetErrorName(q));
	CHECK(cudaEventSynchronize(w.t_stop));
	CHECK(cudaEventQuery(w.t_stop));
	CHECK(cudaEventElapsedTime(&w.elapsed_ms, w.t_start, w.t_stop));

	for (int it = 0; it < ITERS; it++) {
		float a = (float)r.range(-4, 5);
		for (int i = 0; i < w.n; i++)
			w.h_in[i] = (float)r.range(-1000, 1000);
		// Stale data where the result will go.
		CHECK(cudaMemsetAsync(w.d_mid, 0xff, bytes, w.a));
		CHECK(cudaMemsetAsync(w.d_out, 0xff, bytes, w.b));
		CHECK(cudaMemcpyAsync(w.d_in, w.h_in, bytes, cudaMemcpyHostToDevice,
				      w.a));
		if (it == 0) // make the dependency observable on a GPU
			ts_sleep<<<1, 1, 0, w.a>>>(SLEEP_NS / 5);
		ts_scale<<<blocks, 256, 0, w.a>>>(w.d_mid, w.d_in, a, w.n);
		CHECK(cudaGetLastError());
		CHECK(cudaEventRecord(w.dep, w.a));
		CHECK(cudaStreamWaitEvent(w.b, w.dep, 0));
		ts_add<<<blocks, 256, 0, w.b>>>(w.d_out, w.d_mid, w.d_in, w.n);
		CHECK(cudaGetLastError());
		CHECK(cudaMemcpyAsync(w.h_out, w.d_out, bytes, cudaMemcpyDeviceToHost,
				      w.b));
		CHECK(cudaStreamSynchronize(w.b));
		for (int i = 0; i < w.n; i++)
			REQUIRE(w.h_out[i] == w.h_in[i] * a + w.h_in[i],
				"thread %d iteration %d: out[%d] = %g, want %g", w.id, it,
				i, w.h_out[i], w.h_in[i] * a + w.h_in[i]);

		// The default stream: legacy, or this thread's own (ptds).
		if (it % 8 == 0) {
			ts_scale<<<blocks, 256>>>(w.d_out, w.d_in, 2.0f, w.n);
			CHECK(cudaGetLastError());
			CHECK(cudaMemcpyAsync(w.h_out, w.d_out, bytes,
					      cudaMemcpyDeviceToHost, 0));
			CHECK(cudaStreamSynchronize(0));
			for (int i = 0; i < w.n; i++)
				REQUIRE(w.h_out[i] == 2.0f * w.h_in[i],
					"thread %d default stream: out[%d] = %g", w.id,
					i, w.h_out[i]);
			ts_scale<<<blocks, 256, 0, cudaStreamPerThread>>>(
				w.d_out, w.d_in, -3.0f, w.n);
			CHECK(cudaGetLastError());
			CHECK(cudaMemcpyAsync(w.h_out, w.d_out, bytes,
					      cudaMemcpyDeviceToHost,
					      cudaStreamPerThread));
			CHECK(cudaStreamSynchronize(cudaStreamPerThread));
			for (int i = 0; i < w.n; i++)
				REQUIRE(w.h_out[i] == -3.0f * w.h_in[i],
					"thread %d per-thread stream: out[%d] = %g",
					w.id, i, w.h_out[i]);
		}
	}
	w.done_at = since(t_begin);
}

static void teardown(Worker &w)
{
	CHECK(cudaStreamDestroy(w.a));
	CHECK(cudaStreamDestroy(w.b));
	CHECK(cudaEventDestroy(w.dep));
	CHECK(cudaEventDestroy(w.t_start));
	CHECK(cudaEventDestroy(w.t_stop));
	CHECK(cudaFreeHost(w.h_in));
	CHECK(cudaFreeHost(w.h_out));
	CHECK(cudaFree(w.d_in));
	CHECK(cudaFree(w.d_mid));
	CHECK(cudaFree(w.d_out));
}

int main()
{
	CHECK(cudaDeviceGetStreamPriorityRange(&prio_least, &prio_greatest));
	printf("stream priorities %d (least) .. %d (greatest)\n", prio_least,
	       prio_greatest);

	std::vector<Worker> ws(NTHREADS);
	{
		std::vector<std::thread> ts;
		for (int i = 0; i < NTHREADS; i++) {
			ws[i] = Worker();
			ws[i].id = i;
			ts.emplace_back(setup, std::ref(ws[i]));
		}
		for (auto &t : ts)
			t.join();
	}

	// The slow thread's stream is non-blocking so that the workers' use
	// of the legacy default stream does not wait for it.
	cudaStream_t slow_stream;
	int *d_flag, h_flag = 0;
	CHECK(cudaStreamCreateWithFlags(&slow_stream, cudaStreamNonBlocking));
	CHECK(cudaMalloc(&d_flag, sizeof(int)));
	CHECK(cudaMemset(d_flag, 0, sizeof(int)));
	CHECK(cudaDeviceSynchronize());

	double slow_launched = 0, slow_done = 0;
	std::atomic<int> slow_ready(0);
	t_begin = Clock::now();
	std::thread slow([&] {
		CHECK(cudaSetDevice(0));
		ts_slow<<<1, 1, 0, slow_stream>>>(SLOW_NS, d_flag);
		CHECK(cudaGetLastError());
		slow_launched = since(t_begin);
		slow_ready = 1;
		CHECK(cudaStreamSynchronize(slow_stream));
		slow_done = since(t_begin);
	});
	while (!slow_ready.load())
		std::this_thread::yield();
	// Let the slow thread get into cudaStreamSynchronize first.
	std::this_thread::sleep_for(std::chrono::milliseconds(20));
	std::vector<std::thread> ts;
	for (int i = 0; i < NTHREADS; i++)
		ts.emplace_back(work, std::ref(ws[i]));
	go = 1;
	for (auto &t : ts)
		t.join();
	slow.join();

	int not_ready = 0;
	double last_worker = 0;
	for (auto &w : ws) {
		printf("thread %d: done at %.3f s, sleep kernel %.2f ms, %s\n", w.id,
		       w.done_at, w.elapsed_ms,
		       w.saw_not_ready ? "saw NotReady" : "saw it finished");
		REQUIRE(w.elapsed_ms > 0, "thread %d: elapsed %g ms", w.id,
			w.elapsed_ms);
		REQUIRE(w.elapsed_ms >= SLEEP_NS / 1e6 * 0.5,
			"thread %d: a %.0f ms kernel took %.3f ms between events", w.id,
			SLEEP_NS / 1e6, w.elapsed_ms);
		not_ready += w.saw_not_ready;
		if (w.done_at > last_worker)
			last_worker = w.done_at;
	}
	printf("slow kernel: launched at %.3f s, its stream synchronized at %.3f s\n",
	       slow_launched, slow_done);
	REQUIRE(not_ready > 0,
		"no thread saw its stream busy right after a %.0f ms kernel",
		SLEEP_NS / 1e6);
	REQUIRE(slow_done - slow_launched >= SLOW_NS / 1e9 * 0.8,
		"cudaStreamSynchronize returned after %.3f s, before the slow kernel (%.1f s) could finish",
		slow_done - slow_launched, SLOW_NS / 1e9);
	REQUIRE(last_worker < slow_done,
		"the workers finished at %.3f s, after the slow thread (%.3f s): "
		"one thread's cudaStreamSynchronize held up the others",
		last_worker, slow_done);
	CHECK(cudaMemcpy(&h_flag, d_flag, sizeof(int), cudaMemcpyDeviceToHost));
	REQUIRE(h_flag == 1, "slow kernel flag %d", h_flag);

	for (auto &w : ws)
		teardown(w);
	CHECK(cudaStreamDestroy(slow_stream));
	CHECK(cudaFree(d_flag));
	CHECK(cudaDeviceSynchronize());
	printf("OK\n");
	return 0;
}
