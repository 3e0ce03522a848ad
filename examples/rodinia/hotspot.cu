// hotspot.cu - thermal simulation of a chip on the GPU, after Rodinia's
// HotSpot: a function for the paper's experiments (its GPU-heavy benchmark).
//
// At instance start the chip's initial temperatures and power map are
// generated (seeded; HOTSPOT_SIZE x HOTSPOT_SIZE cells, default 512) and
// copied to the GPU.  An invocation runs N time steps (the request body, as
// decimal text; default 60) of the same explicit finite-difference update
// as Rodinia (its constants: silicon conductivity and heat capacity, a
// 0.5 mm x 16 mm x 16 mm chip, 80 degree ambient) and answers JSON: size,
// steps, the mean and maximum temperature, and "ok" (the result matches the
// same computation on the CPU within 1e-4 relative; the CPU's result is
// computed once per step count).
//
// HOTSPOT_INPUT=file (the default) makes a request read its two input grids
// as Rodinia does, from text files of one value per line (kept in memory,
// rendered at instance start), and copy both to the GPU: the CPU part of
// the paper's HotSpot.  HOTSPOT_INPUT=resident keeps them between requests.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

#include "mignificent.h"

// Rodinia HotSpot's chip and material constants.
#define T_CHIP 0.0005f
#define CHIP_HEIGHT 0.016f
#define CHIP_WIDTH 0.016f
#define AMB_TEMP 80.0f
#define K_SI 100.0f
#define SPEC_HEAT_SI 1.75e6f
#define FACTOR_CHIP 0.5f
#define MAX_PD 3.0e6f
#define PRECISION 0.001f
#define STEPS_DEFAULT 60
#define STEPS_MAX 100000

struct coeffs {
	float step_over_cap, rx_1, ry_1, rz_1;
};

// One time step: @out from @in, every cell of a @rows x @cols grid.
extern "C" __global__ void hotspot_step(const float *power, const float *in, float *out,
					int rows, int cols, struct coeffs k)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	int r = blockIdx.y * blockDim.y + threadIdx.y;

	if (r >= rows || c >= cols)
		return;
	int i = r * cols + c;
	float t = in[i];
	float n = r > 0 ? in[i - cols] : t, s = r < rows - 1 ? in[i + cols] : t;
	float w = c > 0 ? in[i - 1] : t, e = c < cols - 1 ? in[i + 1] : t;

	out[i] = t + k.step_over_cap * (power[i] + (s + n - 2.0f * t) * k.ry_1 +
					(e + w - 2.0f * t) * k.rx_1 + (AMB_TEMP - t) * k.rz_1);
}

static int size;
static float *d_power, *d_temp[2], *h_power, *h_temp0, *h_out, *cpu[2];
static char *temp_text, *power_text; // HOTSPOT_INPUT=file: the input files
static float *req_temp, *req_power;  // what a request read from them

// Rodinia's input file for @v: one value per line.
static char *render_grid(const float *v, size_t cells)
{
	size_t cap = cells * 24 + 1, len = 0;
	char *t = (char *)malloc(cap);

	for (size_t i = 0; t && i < cells; i++)
		len += (size_t)snprintf(t + len, cap - len, "%.9g\n", v[i]);
	return t;
}

// Read @cells values of @text into @v; false if it has fewer.
static bool read_grid(const char *text, float *v, size_t cells)
{
	for (size_t i = 0; i < cells; i++) {
		char *end;

		v[i] = strtof(text, &end);
		if (end == text)
			return false;
		text = end;
	}
	return true;
}
static struct coeffs k;

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

extern "C" int mignificent_init(void)
{
	const char *env = getenv("HOTSPOT_SIZE"), *input = getenv("HOTSPOT_INPUT");
	float gw, gh, cap, rx, ry, rz, max_slope;
	size_t cells, bytes;
	uint64_t seed = 512;

	size = env ? atoi(env) : 512;
	if (size < 4 || size > 8192)
		return 2;
	cells = (size_t)size * size;
	bytes = cells * sizeof(float);
	h_power = (float *)malloc(bytes);
	h_temp0 = (float *)malloc(bytes);
	h_out = (float *)malloc(bytes);
	cpu[0] = (float *)malloc(bytes);
	cpu[1] = (float *)malloc(bytes);
	if (!h_power || !h_temp0 || !h_out || !cpu[0] || !cpu[1])
		return 3;
	for (size_t i = 0; i < cells; i++) {
		h_temp0[i] = 323.0f + (float)(lcg(&seed) % 2000) / 100.0f;
		h_power[i] = (float)(lcg(&seed) % 1000) / 1000.0f * 1e-3f;
	}
	if (!input || strcmp(input, "resident")) {
		// "%.9g" reads back as the same float: the CPU reference holds.
		temp_text = render_grid(h_temp0, cells);
		power_text = render_grid(h_power, cells);
		req_temp = (float *)malloc(bytes);
		req_power = (float *)malloc(bytes);
		if (!temp_text || !power_text || !req_temp || !req_power)
			return 3;
	}
	gw = CHIP_WIDTH / size;
	gh = CHIP_HEIGHT / size;
	cap = FACTOR_CHIP * SPEC_HEAT_SI * T_CHIP * gw * gh;
	rx = gw / (2.0f * K_SI * T_CHIP * gh);
	ry = gh / (2.0f * K_SI * T_CHIP * gw);
	rz = T_CHIP / (K_SI * gh * gw);
	max_slope = MAX_PD / (FACTOR_CHIP * T_CHIP * SPEC_HEAT_SI);
	k.step_over_cap = (PRECISION / max_slope) / cap;
	k.rx_1 = 1.0f / rx;
	k.ry_1 = 1.0f / ry;
	k.rz_1 = 1.0f / rz;
	if (cudaMalloc(&d_power, bytes) || cudaMalloc(&d_temp[0], bytes) ||
	    cudaMalloc(&d_temp[1], bytes) ||
	    cudaMemcpy(d_power, h_power, bytes, cudaMemcpyHostToDevice))
		return 4;
	return 0;
}

// The same update on the CPU; returns the buffer holding the result.
static float *cpu_run(int steps)
{
	int cur = 0;

	memcpy(cpu[0], h_temp0, (size_t)size * size * sizeof(float));
	for (int s = 0; s < steps; s++, cur ^= 1) {
		const float *in = cpu[cur];
		float *out = cpu[cur ^ 1];

		for (int r = 0; r < size; r++)
			for (int c = 0; c < size; c++) {
				int i = r * size + c;
				float t = in[i];
				float n = r > 0 ? in[i - size] : t, so = r < size - 1 ? in[i + size] : t;
				float w = c > 0 ? in[i - 1] : t, e = c < size - 1 ? in[i + 1] : t;

				out[i] = t + k.step_over_cap *
						     (h_power[i] + (so + n - 2.0f * t) * k.ry_1 +
						      (e + w - 2.0f * t) * k.rx_1 + (AMB_TEMP - t) * k.rz_1);
			}
	}
	return cpu[cur];
}

/* The CPU's result for @steps steps, computed once per step count (a
 * benchmark asks for the same one again and again). */
static float *reference(int steps)
{
	static float *ref;
	static int ref_steps = -1;

	if (steps != ref_steps) {
		if (!ref)
			ref = (float *)malloc((size_t)size * size * sizeof(float));
		if (!ref)
			return cpu_run(steps);
		memcpy(ref, cpu_run(steps), (size_t)size * size * sizeof(float));
		ref_steps = steps;
	}
	return ref;
}

static int answer(struct mig_payload *o, const char *text, int status)
{
	o->data = strdup(text);
	o->len = o->data ? strlen(text) : 0;
	snprintf(o->content_type, sizeof(o->content_type), "application/json");
	return status;
}

extern "C" int hotspot(const struct mig_payload *in, struct mig_payload *o)
{
	size_t cells = (size_t)size * size, bytes = cells * sizeof(float);
	int steps = STEPS_DEFAULT, cur = 0;
	dim3 block(16, 16), grid((size + 15) / 16, (size + 15) / 16);
	double mean = 0, worst = 0;
	float max_t = 0, *ref;
	char buf[256];
	cudaError_t e;

	if (in->len) {
		char num[16] = { 0 };

		memcpy(num, in->data, in->len < sizeof(num) - 1 ? in->len : sizeof(num) - 1);
		steps = atoi(num);
		if (steps < 1 || steps > STEPS_MAX)
			return answer(o, "{\"error\": \"the request is the number of steps, 1 to 100000\"}", 2);
	}
	if (temp_text) { // read the input files, as every Rodinia run does
		if (!read_grid(temp_text, req_temp, cells) ||
		    !read_grid(power_text, req_power, cells))
			return answer(o, "{\"error\": \"an input grid does not parse\"}", 1);
		e = cudaMemcpy(d_power, req_power, bytes, cudaMemcpyHostToDevice);
		if (!e)
			e = cudaMemcpy(d_temp[0], req_temp, bytes, cudaMemcpyHostToDevice);
	} else {
		e = cudaMemcpy(d_temp[0], h_temp0, bytes, cudaMemcpyHostToDevice);
	}
	for (int s = 0; s < steps && !e; s++, cur ^= 1)
		hotspot_step<<<grid, block>>>(d_power, d_temp[cur], d_temp[cur ^ 1], size, size, k);
	if (!e)
		e = cudaMemcpy(h_out, d_temp[cur], bytes, cudaMemcpyDeviceToHost);
	if (e) {
		snprintf(buf, sizeof(buf), "{\"error\": \"%s\"}", cudaGetErrorString(e));
		return answer(o, buf, 1);
	}
	ref = reference(steps);
	for (size_t i = 0; i < cells; i++) {
		double rel = fabs((double)h_out[i] - ref[i]) / fabs((double)ref[i]);

		mean += h_out[i];
		max_t = h_out[i] > max_t ? h_out[i] : max_t;
		worst = rel > worst ? rel : worst;
	}
	snprintf(buf, sizeof(buf),
		 "{\"size\": %d, \"steps\": %d, \"mean\": %.4f, \"max\": %.4f, \"ok\": %s}", size,
		 steps, mean / cells, max_t, worst <= 1e-4 ? "true" : "false");
	return answer(o, buf, worst <= 1e-4 ? 0 : 1);
}
