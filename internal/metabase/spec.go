package metabase

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// The dashboards are files in the repository so that a change to a
// dashboard is a reviewed diff; setup applies them.
//
//go:embed dashboards/*.yaml
var dashboardFiles embed.FS

// Dashboard is one dashboards/*.yaml file.
type Dashboard struct {
	Key         string `json:"key"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Order places the dashboard in the collection (lower first).
	Order int `json:"order"`
	// DateFilter is the name of the dashboard's date-range filter, empty
	// when no card can be filtered by date.
	DateFilter string `json:"date_filter"`
	Cards      []Card `json:"cards"`
}

// Card is one native SQL question on a dashboard.
type Card struct {
	Key         string `json:"key"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Display is Metabase's visualization: scalar, line, bar, area, pie,
	// table, row, combo, progress...
	Display       string         `json:"display"`
	Visualization map[string]any `json:"visualization"`
	Position      Position       `json:"position"`
	// DateTag names the field-filter template tag ({{tag}} in the SQL) the
	// dashboard's date filter drives, and the column it filters.
	DateTag *DateTag `json:"date_tag"`
	SQL     string   `json:"sql"`
}

// Position is the card's place on Metabase's 24-column grid.
type Position struct {
	Col    int `json:"col"`
	Row    int `json:"row"`
	Width  int `json:"width"`
	Height int `json:"height"`
}

// DateTag is a field filter: Metabase replaces {{Tag}} with a condition on
// Schema.Table.Column, so that table must appear unaliased in the FROM.
type DateTag struct {
	Tag    string `json:"tag"`
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Column string `json:"column"`
}

var (
	keyPattern  = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	tagPattern  = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	tagInSQL    = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)
	gridColumns = 24
)

// Dashboards returns the embedded dashboard definitions, checked.
func Dashboards() ([]Dashboard, error) {
	return loadDashboards(dashboardFiles, "dashboards")
}

func loadDashboards(fsys fs.FS, dir string) ([]Dashboard, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Dashboard
	dashKeys := map[string]string{}
	cardKeys := map[string]string{}
	for _, name := range names {
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		var d Dashboard
		if err := yaml.UnmarshalStrict(raw, &d); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", name, err)
		}
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if prev, dup := dashKeys[d.Key]; dup {
			return nil, fmt.Errorf("%s: dashboard key %q already used in %s", name, d.Key, prev)
		}
		dashKeys[d.Key] = name
		for _, c := range d.Cards {
			if prev, dup := cardKeys[c.Key]; dup {
				return nil, fmt.Errorf("%s: card key %q already used in %s", name, c.Key, prev)
			}
			cardKeys[c.Key] = name
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Order < out[j].Order })
	if len(out) == 0 {
		return nil, fmt.Errorf("no dashboard definitions in %s", dir)
	}
	return out, nil
}

func (d *Dashboard) check() error {
	if !keyPattern.MatchString(d.Key) {
		return fmt.Errorf("dashboard key %q: expected lower-case words joined by dots", d.Key)
	}
	if strings.TrimSpace(d.Name) == "" || len(d.Cards) == 0 {
		return fmt.Errorf("dashboard %s: needs a name and at least one card", d.Key)
	}
	type cell struct{ r, c int }
	taken := map[cell]string{}
	for i := range d.Cards {
		c := &d.Cards[i]
		if !keyPattern.MatchString(c.Key) || !strings.HasPrefix(c.Key, d.Key+".") {
			return fmt.Errorf("card key %q: expected %s.<name> in lower case", c.Key, d.Key)
		}
		if strings.TrimSpace(c.Name) == "" || strings.TrimSpace(c.SQL) == "" || c.Display == "" {
			return fmt.Errorf("card %s: needs a name, a display and SQL", c.Key)
		}
		p := c.Position
		if p.Width < 1 || p.Height < 1 || p.Col < 0 || p.Row < 0 || p.Col+p.Width > gridColumns {
			return fmt.Errorf("card %s: position %+v does not fit the %d-column grid", c.Key, p, gridColumns)
		}
		for r := p.Row; r < p.Row+p.Height; r++ {
			for col := p.Col; col < p.Col+p.Width; col++ {
				if other, ok := taken[cell{r, col}]; ok {
					return fmt.Errorf("card %s overlaps card %s at row %d, col %d", c.Key, other, r, col)
				}
				taken[cell{r, col}] = c.Key
			}
		}
		used := map[string]bool{}
		for _, m := range tagInSQL.FindAllStringSubmatch(c.SQL, -1) {
			used[m[1]] = true
		}
		if c.DateTag != nil {
			t := c.DateTag
			if !tagPattern.MatchString(t.Tag) || t.Schema == "" || t.Table == "" || t.Column == "" {
				return fmt.Errorf("card %s: date_tag needs tag, schema, table and column", c.Key)
			}
			if d.DateFilter == "" {
				return fmt.Errorf("card %s has a date_tag but dashboard %s has no date_filter", c.Key, d.Key)
			}
			if !used[t.Tag] {
				return fmt.Errorf("card %s: date_tag %q is not used as {{%s}} in its SQL", c.Key, t.Tag, t.Tag)
			}
			delete(used, t.Tag)
		}
		for tag := range used {
			return fmt.Errorf("card %s: {{%s}} in the SQL is not a declared tag", c.Key, tag)
		}
	}
	return nil
}

// marker is the stable key setup writes into the description of everything
// it creates; it is how a later run recognises its own objects and leaves
// everyone else's alone.
func marker(key string) string { return "[marketplace-etl:" + key + "]" }

var markerPattern = regexp.MustCompile(`\[marketplace-etl:([a-z0-9_.]+)\]`)

// markerOf returns the key in a description, or "".
func markerOf(description string) string {
	m := markerPattern.FindStringSubmatch(description)
	if m == nil {
		return ""
	}
	return m[1]
}

func describe(text, key string) string {
	text = strings.TrimSpace(text)
	if text == "" {
		return marker(key)
	}
	return text + "\n\n" + marker(key)
}
