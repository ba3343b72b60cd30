package config

import "flag"

// RegisterFlags defines a flag on fs for every parameter that has one, with
// the parameter's default and usage. A flag's value is parsed and stored
// with SetAtStart; Validate-style checks added later still run on every
// CONFIG SET. It returns a function reporting which parameters were set by
// a flag (by canonical name).
func (r *Registry) RegisterFlags(fs *flag.FlagSet) (given func(name string) bool) {
	set := map[string]bool{}
	for _, p := range r.params {
		if p.Flag == "" {
			continue
		}
		fs.Var(&flagValue{r: r, p: p, set: set}, p.Flag, p.Usage)
	}
	return func(name string) bool { return set[name] }
}

// flagValue is a flag.Value over one parameter.
type flagValue struct {
	r   *Registry
	p   *Param
	set map[string]bool
}

// String implements flag.Value: the default shown by -help. flag calls it
// on a zero flagValue to detect zero defaults, hence the nil check.
func (f *flagValue) String() string {
	if f == nil || f.p == nil {
		return ""
	}
	if f.p.Kind == Bytes || f.p.Kind == OutputLimit {
		return f.p.Default // as written in the table: 512mb reads better than 536870912
	}
	return f.r.Snapshot().Format(f.p)
}

// Set implements flag.Value.
func (f *flagValue) Set(s string) error {
	if err := f.r.SetAtStart([][2]string{{f.p.Name, s}}); err != nil {
		var se *SetError
		if asSetError(err, &se) {
			return se.Err
		}
		return err
	}
	f.set[f.p.Name] = true
	return nil
}
