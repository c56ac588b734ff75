"""Real tegrastats lines, as people recorded them on their boards and posted them publicly (found
with a code/issue search). Each with where it came from; multi-line README copies are joined
with single spaces, otherwise the text is as published."""

RECORDED = {
    # rbonghi/jetson_stats issue #624 (2025-05-16): 6 cores, 7620 MB, NVENC -> Orin NX 8 GB, JetPack 6
    "orin_nx_8gb_jp6": (
        "05-15-2025 18:30:28 RAM 6982/7620MB (lfb 5x1MB) SWAP 2640/16384MB (cached 202MB) "
        "CPU [97%@1984,95%@1984,95%@1984,91%@1984,88%@1984,93%@247] EMC_FREQ 18%@3199 "
        "GR3D_FREQ 84%@[713] NVENC 1%@115 NVDEC 40%@115 NVJPG off NVJPG1 off VIC 31%@115 OFA off "
        "NVDLA0 off PVA0_FREQ off APE 174 cv0@63.031C cpu@65.562C soc2@64.156C soc0@63.031C "
        "cv1@62.937C gpu@63.5C tj@65.562C soc1@64.718C cv2@60.875C VDD_IN 17946mW/15710mW "
        "VDD_CPU_GPU_CV 8896mW/7585mW VDD_SOC 3923mW/3515mW"
    ),
    # a Rust tegrastats parser's test (code search), recorded 11-30-2025: 7620 MB, no NVENC -> Orin Nano 8 GB
    "orin_nano_8gb_jp6": (
        "11-30-2025 13:26:01 RAM 2461/7620MB (lfb 3x2MB) SWAP 1243/3810MB (cached 5MB) "
        "CPU [19%@729,14%@729,22%@729,8%@729,15%@729,17%@729] EMC_FREQ 4%@2133 GR3D_FREQ 0%@[305] "
        "NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@46.531C soc2@47.312C soc0@46.593C "
        "gpu@48.218C tj@48.843C soc1@48.843C VDD_IN 5704mW/5704mW VDD_CPU_GPU_CV 831mW/831mW "
        "VDD_SOC 1624mW/1624mW"
    ),
    # GDWR/jetson_exporter issue #14 (2025-04-11): 12 cores, 62801 MB -> AGX Orin 64 GB; no VDD_IN rail
    "agx_orin_64gb": (
        "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) "
        "CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] "
        "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C Tboard@32C "
        "SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C SOC1@41.25C CV2@-256C "
        "VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW "
        "VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"
    ),
    # a Jetson Prometheus exporter's README, "Jetson Xavier" example (code search): Xavier NX, JetPack 5 units
    "xavier_nx_jp5": (
        "RAM 2690/6854MB (lfb 6x1MB) SWAP 479/3427MB (cached 3MB) "
        "CPU [3%@1904,7%@1906,1%@1905,0%@1907,off,off] "
        "EMC_FREQ 0%@1600 GR3D_FREQ 0%@[510] VIC_FREQ 601 APE 150 "
        "AUX@39C CPU@39.5C AO@37.5C GPU@37.5C PMIC@50C "
        "VDD_IN 5079mW/5079mW VDD_CPU_GPU_CV 696mW/696mW VDD_SOC 1104mW/1104mW"
    ),
    # martinkersner/gtop pull request #7 (2019-06-17): AGX Xavier, JetPack 4.2; rails without units
    "agx_xavier_jp4": (
        "RAM 14700/15692MB (lfb 3x2MB) SWAP 898/8192MB (cached 23MB) "
        "CPU [0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190] EMC_FREQ 0% GR3D_FREQ 0% "
        "AO@30C GPU@30.5C Tboard@31C Tdiode@32C AUX@30.5C CPU@31.5C thermal@30.8C PMIC@100C "
        "GPU 463/463 CPU 618/618 SOC 2936/2936 CV 0/0 VDDRQ 309/309 SYS5V 3306/3306"
    ),
    # henrygd/beszel pull request #1631 (2026-01-12): TX2, "pre JetPack 5"
    "tx2_jp4": (
        "RAM 3276/7859MB (lfb 5x4MB) SWAP 1626/12122MB (cached 181MB) "
        "CPU [44%@1421,49%@2031,67%@2034,17%@1420,25%@1419,8%@1420] EMC_FREQ 1%@1866 GR3D_FREQ 0%@114 "
        "APE 150 MTS fg 1% bg 1% PLL@42.5C MCPU@42.5C PMIC@50C Tboard@38C GPU@39.5C BCPU@42.5C "
        "thermal@41.3C Tdiode@39.25C VDD_SYS_GPU 182/182 VDD_SYS_SOC 730/730 VDD_4V0_WIFI 0/0 "
        "VDD_IN 5297/5297 VDD_SYS_CPU 1917/1917 VDD_SYS_DDR 1241/1241"
    ),
    # the same exporter README, "Jetson Nano" example: JetPack 4, POM_ rails
    "nano_jp4": (
        "RAM 1409/3964MB (lfb 28x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
        "CPU [22%@518,67%@518,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 "
        "PLL@28.5C CPU@32C PMIC@50C GPU@30.5C AO@39.5C thermal@31.25C "
        "POM_5V_IN 2003/2003 POM_5V_GPU 0/0 POM_5V_CPU 320/320"
    ),
}
