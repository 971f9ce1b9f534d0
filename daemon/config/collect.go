package config

// Collect chooses which faces the daemon saves for labelling: those whose
// p_fake falls in [band_low, band_high] (where the head is unsure) and/or
// every Nth face. Off unless a band or every_n is set.
type Collect struct {
	// Dir holds the saved crops; default <state_dir>/collect.
	Dir         string  `yaml:"dir"`
	BandLow     float64 `yaml:"band_low"`
	BandHigh    float64 `yaml:"band_high"`
	EveryN      int     `yaml:"every_n"`
	MaxFiles    int     `yaml:"max_files"`
	MaxBytes    int     `yaml:"max_bytes"`
	JPEGQuality int     `yaml:"jpeg_quality"`
}

// Enabled says whether any face would be saved.
func (c Collect) Enabled() bool { return c.BandHigh > 0 || c.EveryN > 0 }

func (c *Collect) check(k checker) {
	k.between("train.collect.band_low", c.BandLow, 0, 1)
	k.between("train.collect.band_high", c.BandHigh, 0, 1)
	if c.BandLow > c.BandHigh {
		k.fail("train.collect.band_low", "%g is above train.collect.band_high %g", c.BandLow, c.BandHigh)
	}
	k.inRange("train.collect.every_n", c.EveryN, 0, MaxEveryN)
	k.inRange("train.collect.max_files", c.MaxFiles, 1, MaxFiles)
	k.inRange("train.collect.max_bytes", c.MaxBytes, 0, MaxCollectB)
	if c.JPEGQuality < 1 || c.JPEGQuality > 100 {
		k.fail("train.collect.jpeg_quality", "must be 1..100, got %d", c.JPEGQuality)
	}
}
